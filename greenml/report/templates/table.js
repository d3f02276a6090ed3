// Sorting and filtering for the trial tables: click a header to sort, type to filter.
(function () {
  "use strict";
  function cellValue(row, index) {
    var cell = row.cells[index];
    var raw = cell.getAttribute("data-v");
    if (raw === null) raw = cell.textContent;
    var number = raw === "" ? NaN : Number(raw);
    return isNaN(number) ? { n: null, s: raw.toLowerCase() } : { n: number, s: raw };
  }
  function compare(a, b) {
    if (a.n !== null && b.n !== null) return a.n - b.n;
    if (a.n !== null) return -1;
    if (b.n !== null) return 1;
    return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  }
  document.querySelectorAll("table.trials").forEach(function (table) {
    var body = table.tBodies[0];
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      th.addEventListener("click", function () {
        var descending = th.getAttribute("aria-sort") === "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var order = compare(cellValue(a, index), cellValue(b, index));
          return descending ? -order : order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
    var box = document.getElementById(table.id + "-filter");
    var status = document.getElementById(table.id + "-status");
    var count = document.getElementById(table.id + "-count");
    function apply() {
      var needle = box ? box.value.trim().toLowerCase() : "";
      var wanted = status ? status.value : "";
      var shown = 0;
      Array.prototype.forEach.call(body.rows, function (row) {
        var ok = (!wanted || row.getAttribute("data-status") === wanted) &&
                 (!needle || row.textContent.toLowerCase().indexOf(needle) !== -1);
        row.hidden = !ok;
        if (ok) shown += 1;
      });
      if (count) count.textContent = shown + " of " + body.rows.length + " trials shown";
    }
    if (box) box.addEventListener("input", apply);
    if (status) status.addEventListener("change", apply);
    apply();
  });
  // Copy buttons beside the model commands: the clipboard where the page may use it (a file://
  // page may not), else the command selected for Ctrl-C.
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      function select() {
        var code = button.previousElementSibling;
        if (!code) return;
        var range = document.createRange();
        range.selectNodeContents(code);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "selected: Ctrl-C";
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { button.textContent = "copied"; }, select);
      } else {
        select();
      }
    });
  });
})();
