// Draw the figures from their JSON blocks in page order, yielding between them so the top of
// the page shows while the rest is drawn. A figure that fails says so on the page and in the
// console. data-drawn holds the milliseconds from navigation start to the figure being drawn.
(function () {
  "use strict";
  var hoverBlock = document.getElementById("trial-hover");
  var hover = hoverBlock ? JSON.parse(hoverBlock.textContent) : {};
  var config = { responsive: true, displaylogo: false, toImageButtonOptions: { format: "svg" } };
  var pending = Array.prototype.slice.call(document.querySelectorAll("div.figure[data-figure]"));
  function draw(div) {
    var spec = JSON.parse(document.getElementById(div.getAttribute("data-figure")).textContent);
    spec.data.forEach(function (trace) {
      if (trace.meta === "trial-hover") {
        trace.text = trace.customdata.map(function (key) { return hover[key]; });
      }
    });
    return Plotly.newPlot(div, spec.data, spec.layout, config).then(function () {
      div.setAttribute("data-drawn", String(Math.round(performance.now())));
    }, function (error) {
      div.textContent = "This figure could not be drawn: " + error;
      console.error(error);
    });
  }
  function next() {
    var div = pending.shift();
    if (!div) return;
    draw(div).then(function () { window.setTimeout(next, 0); });
  }
  next();
})();
