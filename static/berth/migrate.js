// The Migrate panel: while the form's POST runs (it answers when the move is over), poll the
// migration's steps and show them; the answer's page replaces this one when it is done.
(function () {
  "use strict";
  const form = document.getElementById("migrate-form");
  if (!form) return;
  const box = document.getElementById("migrate-progress");
  form.addEventListener("submit", function (event) {
    // berth.js asks for confirmation on the document after this handler: wait for its answer.
    window.setTimeout(function () { if (!event.defaultPrevented) start(); }, 0);
  });
  function start() {
    const button = document.getElementById("migrate-button");
    const since = Date.now() / 1000;
    button.disabled = true;
    button.textContent = "Migrating…";
    box.hidden = false;
    const poll = function () {
      fetch(form.dataset.progress + "?since=" + since, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) { if (html) box.innerHTML = html; })
        .catch(function () {});
    };
    poll();
    window.setInterval(poll, 700);
  }
})();
