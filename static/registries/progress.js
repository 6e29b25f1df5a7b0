// Polls /api/v1/operations/<id>/progress/ once a second: one <progress> bar per layer, the log
// appended from the last offset, until the operation succeeds or fails.
(function () {
  const box = document.getElementById("op-progress");
  if (!box) return;
  const url = box.dataset.url;
  const rows = box.querySelector("#op-layers tbody");
  const log = document.getElementById("op-log");
  let since = 0;

  function row(layer) {
    let tr = rows.querySelector(`tr[data-id="${CSS.escape(layer.id)}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.id = layer.id;
      tr.innerHTML = '<td class="mono"></td><td></td><td><progress max="100"></progress> <span></span></td>';
      tr.cells[0].textContent = layer.id.slice(0, 19);
      rows.appendChild(tr);
    }
    tr.cells[1].textContent = layer.status;
    const bar = tr.querySelector("progress");
    if (layer.percent === null) bar.removeAttribute("value");
    else bar.value = layer.percent;
    tr.querySelector("span").textContent = layer.percent === null ? "" : `${layer.percent}%`;
  }

  async function tick() {
    const answer = await fetch(`${url}?since=${since}`, {
      credentials: "same-origin",
      headers: { "X-Berth-Poll": "1" },
    });
    if (!answer.ok) return;
    const data = await answer.json();
    document.getElementById("op-state").textContent = data.state;
    data.layers.forEach(row);
    if (data.layers.length) document.getElementById("op-layers-box").hidden = false;
    document.getElementById("op-status").textContent = data.status;
    if (data.log) {
      log.textContent += data.log;
      document.getElementById("op-log-box").hidden = false;
      // Builds: each step taken from the cache says so in the log.
      const hits = (log.textContent.match(/Using cache/g) || []).length;
      if (data.kind === "image.build") {
        document.getElementById("op-cache").hidden = false;
        document.getElementById("op-cache-hits").textContent = String(hits);
      }
    }
    since = data.next;
    if (data.error) {
      const err = document.getElementById("op-error");
      err.textContent = data.error;
      err.hidden = false;
    }
    if (data.state === "failed") {
      // The last progress line ("Resolving", ...) is stale once the operation has failed.
      document.getElementById("op-status").textContent = "";
      const err = document.getElementById("op-error");
      if (!err.textContent.trim()) err.textContent = data.error || "the operation failed";
      err.hidden = false;
      document.getElementById("op-failed").hidden = false;
      return;
    }
    if (data.state === "succeeded") {
      document.getElementById("op-done").hidden = false;
      return;
    }
    setTimeout(tick, 1000);
  }
  tick();
})();
