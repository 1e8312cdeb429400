// Sortable tables without a framework: click (or Enter on) a column header to sort every block of the table
// by that column. Cells carry their numeric key in data-sort; empty keys (missing results) always sort last.
(function () {
  function key(cell) {
    var v = cell && cell.getAttribute("data-sort");
    return v === null || v === "" ? null : parseFloat(v);
  }
  function sortBy(th) {
    var table = th.closest("table"), col = +th.getAttribute("data-col");
    var numeric = th.getAttribute("data-type") !== "text";
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "descending" ? "ascending" : "descending") : (numeric ? "descending" : "ascending");
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    table.querySelectorAll("tbody").forEach(function (tbody) {
      var rows = Array.prototype.filter.call(tbody.rows, function (r) { return !r.classList.contains("group"); });
      rows.sort(function (a, b) {
        if (!numeric) { return sign * a.cells[col].textContent.localeCompare(b.cells[col].textContent); }
        var x = key(a.cells[col]), y = key(b.cells[col]);
        if (x === null || y === null) { return (x === null) - (y === null); }
        return sign * (x - y);
      });
      rows.forEach(function (r) { tbody.appendChild(r); });
    });
  }
  document.querySelectorAll("table.sortable th[data-col]").forEach(function (th) {
    th.tabIndex = 0;
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); }
    });
  });
})();
