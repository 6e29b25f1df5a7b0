// Live stats of one container: polls the stats endpoint and keeps the last 60 samples in charts.
(function () {
  "use strict";
  const box = document.getElementById("stats");
  if (!box || typeof Chart === "undefined") return;
  const MAX = 60;
  const INTERVAL = 3000;

  // The agent's stats dict may nest values; find the first number under any of these paths.
  function pick(obj, paths) {
    for (const path of paths) {
      let v = obj;
      for (const key of path.split(".")) { v = v == null ? undefined : v[key]; }
      if (typeof v === "number") return v;
    }
    return null;
  }
  function netTotals(s) {
    const nets = s.networks || s.network;
    if (nets && typeof nets === "object") {
      let rx = 0, tx = 0, seen = false;
      Object.values(nets).forEach(function (n) {
        if (n && typeof n === "object") { rx += n.rx_bytes || 0; tx += n.tx_bytes || 0; seen = true; }
      });
      if (seen) return [rx, tx];
    }
    return [pick(s, ["net_rx_bytes", "rx_bytes"]), pick(s, ["net_tx_bytes", "tx_bytes"])];
  }
  function chart(id, label, datasets) {
    return new Chart(document.getElementById(id), {
      type: "line",
      data: {labels: [], datasets: datasets.map((d) => ({label: d, data: [], pointRadius: 0, borderWidth: 2}))},
      options: {maintainAspectRatio: false, animation: false, plugins: {title: {display: true, text: label}}, scales: {y: {beginAtZero: true}}},
    });
  }
  const charts = {
    cpu: chart("chart-cpu", "CPU %", ["cpu"]),
    mem: chart("chart-mem", "Memory MiB", ["usage"]),
    net: chart("chart-net", "Network KiB/s", ["rx", "tx"]),
    pids: chart("chart-pids", "Processes", ["pids"]),
  };
  function push(c, label, values) {
    c.data.labels.push(label);
    values.forEach(function (v, i) { c.data.datasets[i].data.push(v); });
    if (c.data.labels.length > MAX) { c.data.labels.shift(); c.data.datasets.forEach((d) => d.data.shift()); }
    c.update();
  }
  let last = null;
  async function tick() {
    try {
      const r = await fetch(box.dataset.url, {headers: {"Accept": "application/json", "X-Berth-Poll": "1"}, credentials: "same-origin"});
      if (!r.ok) return;
      const s = await r.json();
      if (!s.running) return;
      const now = Date.now();
      const cpu = pick(s, ["cpu_usage_ns", "cpu.usage_ns", "cpu_stats.usage_ns"]);
      const [rx, tx] = netTotals(s);
      const label = new Date(now).toLocaleTimeString();
      if (last) {
        const dt = (now - last.t) / 1000;
        const pct = cpu != null && last.cpu != null ? Math.max(0, (cpu - last.cpu) / 1e9 / dt * 100) : null;
        push(charts.cpu, label, [pct]);
        push(charts.net, label, [rx != null && last.rx != null ? (rx - last.rx) / 1024 / dt : null,
                                 tx != null && last.tx != null ? (tx - last.tx) / 1024 / dt : null]);
      }
      const mem = pick(s, ["memory_usage", "memory.usage", "memory_stats.usage"]);
      push(charts.mem, label, [mem != null ? mem / 1048576 : null]);
      push(charts.pids, label, [pick(s, ["pids_current", "pids.current", "pids"])]);
      last = {t: now, cpu: cpu, rx: rx, tx: tx};
    } catch (e) { /* the next tick tries again */ }
  }
  tick();
  setInterval(function () { if (!document.hidden) tick(); }, INTERVAL);
})();
