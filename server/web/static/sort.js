// Sortable tables: headings of a table.sortable become buttons; a click sorts its rows by the
// cells' data-sort-value (numbers; empty = unknown, always last) or their text. The first click
// uses the column's better direction (data-sort-dir), the next reverses it. aria-sort tells
// screen readers the current order. Without JavaScript the tables keep the server's order.
(function () {
  "use strict";

  function cellKey(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return null; }
    var raw = cell.hasAttribute("data-sort-value") ? cell.getAttribute("data-sort-value") : cell.textContent.trim();
    if (numeric) {
      var value = parseFloat(raw);
      return isNaN(value) ? null : value;
    }
    return raw === "" || raw === "–" ? null : raw.toLowerCase();
  }

  function sortBy(table, th, index) {
    var numeric = th.getAttribute("data-sort") === "number";
    var current = th.getAttribute("aria-sort");
    var first = th.getAttribute("data-sort-dir") === "desc" ? "descending" : "ascending";
    var order = current === first ? (first === "ascending" ? "descending" : "ascending") : first;
    var sign = order === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, position) {
      return { row: row, key: cellKey(row, index, numeric), position: position };
    });
    keyed.sort(function (a, b) {
      if (a.key === null && b.key === null) { return a.position - b.position; }
      if (a.key === null) { return 1; }
      if (b.key === null) { return -1; }
      if (a.key < b.key) { return -sign; }
      if (a.key > b.key) { return sign; }
      return a.position - b.position;
    });
    keyed.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
      other.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", order);
  }

  function enhance(table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      if (!th.hasAttribute("data-sort")) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      button.addEventListener("click", function () { sortBy(table, th, index); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), enhance);
  });
})();
