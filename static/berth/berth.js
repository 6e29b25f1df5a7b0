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

// Phone layout: the Menu button folds the side navigation open and shut.
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    const btn = ev.target.closest("#nav-toggle");
    if (!btn) return;
    const nav = document.getElementById("side-nav");
    const open = nav.classList.toggle("open");
    btn.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();

// Container list: after "select all" on a page with more pages behind it, offer every matching
// container; the server then applies the list's filters itself (input name=all).
(function () {
  "use strict";
  document.addEventListener("change", function (ev) {
    if (ev.target.id === "select-page" || (ev.target.name === "ids" && !ev.target.checked)) {
      const offer = document.getElementById("select-all-matching");
      const all = document.getElementById("bulk-all");
      if (all) all.value = "";
      if (offer) {
        offer.hidden = !document.getElementById("select-page").checked;
        offer.innerHTML = offer.dataset.original || offer.innerHTML;
      }
    }
  });
  document.addEventListener("click", function (ev) {
    const btn = ev.target.closest("#select-all-pages");
    if (!btn) return;
    const offer = document.getElementById("select-all-matching");
    offer.dataset.original = offer.dataset.original || offer.innerHTML;
    document.getElementById("bulk-all").value = "1";
    offer.textContent = `All ${btn.dataset.count} matching containers are selected.`;
  });
})();

// Regions that scroll inside themselves (tables on a phone, logs, the spec) take keyboard focus,
// so they can be scrolled without a mouse (WCAG 2.1.1; axe "scrollable-region-focusable").
(function () {
  "use strict";
  function mark() {
    document.querySelectorAll("main table, main pre, main .table-wrap").forEach(function (el) {
      const scrolls = el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1;
      if (scrolls && !el.hasAttribute("tabindex")) el.setAttribute("tabindex", "0");
    });
  }
  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("resize", mark);
  document.addEventListener("htmx:afterSettle", mark);
  window.berthMarkScrollables = mark;
})();
