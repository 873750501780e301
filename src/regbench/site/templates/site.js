// regbench results: the index's filter box (plain JS, no framework). Every row carries
// its searchable text in data-search; all words typed must occur in it.
(function () {
  "use strict";
  var box = document.getElementById("filter");
  if (!box) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll("table.filterable tbody tr"));
  var none = document.getElementById("nomatch");
  function apply() {
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.getAttribute("data-search") || "";
      var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    if (none) { none.hidden = shown > 0; }
  }
  box.addEventListener("input", apply);
  if (location.hash.indexOf("#q=") === 0) {
    box.value = decodeURIComponent(location.hash.slice(3));
  }
  apply();
}());
