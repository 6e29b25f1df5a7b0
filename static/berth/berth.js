// Small behaviours shared by every page: select-all boxes and confirmation of dangerous buttons.
(function () {
  "use strict";
  document.addEventListener("change", function (ev) {
    const box = ev.target;
    if (box.matches("input[data-select-all]")) {
      document.querySelectorAll(box.dataset.selectAll).forEach(function (b) { b.checked = box.checked; });
    }
  });
  document.addEventListener("submit", function (ev) {
    const btn = ev.submitter;
    const text = (btn && btn.dataset.confirm) || ev.target.dataset.confirm;
    if (text && !window.confirm(text)) ev.preventDefault();
  });
})();

// Live rows are replaced by htmx polling: keep the user's selected checkboxes across swaps.
(function () {
  "use strict";
  let kept = null;
  document.addEventListener("htmx:beforeSwap", function (ev) {
    if (ev.detail.target.id !== "container-rows") return;
    kept = new Set(Array.from(ev.detail.target.querySelectorAll("input[name=ids]:checked")).map((b) => b.value));
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!kept) return;
    document.querySelectorAll("#container-rows input[name=ids]").forEach(function (b) { b.checked = kept.has(b.value); });
    kept = null;
  });
})();
