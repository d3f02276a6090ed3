// Draw every figure from its JSON block; a figure that fails says so on the page and in the console.
(function () {
  "use strict";
  document.querySelectorAll("div.figure[data-figure]").forEach(function (div) {
    var spec = JSON.parse(document.getElementById(div.getAttribute("data-figure")).textContent);
    var config = { responsive: true, displaylogo: false, toImageButtonOptions: { format: "svg" } };
    Plotly.newPlot(div, spec.data, spec.layout, config).then(function () {
      div.setAttribute("data-drawn", "true");
    }, function (error) {
      div.textContent = "This figure could not be drawn: " + error;
      console.error(error);
    });
  });
})();
