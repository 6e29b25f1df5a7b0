// Dashboard charts: a doughnut of container states and bars of what was created per day.
(function () {
  "use strict";
  const el = document.getElementById("chart-data");
  if (!el || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  const colours = {running: "#1a7f37", stopped: "#c62828", created: "#8d5b00", paused: "#b7791f", ghost: "#7b61ff", pending: "#8a99ad", error: "#5d4037", unknown: "#9e9e9e"};
  const states = document.getElementById("chart-states");
  if (states && data.states) {
    const names = Object.keys(data.states);
    new Chart(states, {
      type: "doughnut",
      data: {labels: names, datasets: [{data: names.map((n) => data.states[n]), backgroundColor: names.map((n) => colours[n])}]},
      options: {maintainAspectRatio: false, animation: false, plugins: {legend: {position: "right"}}},
    });
  }
  const activity = document.getElementById("chart-activity");
  if (activity && data.days) {
    new Chart(activity, {
      type: "bar",
      data: {
        labels: data.days.map((d) => d.slice(5)),
        datasets: [
          {label: "containers", data: data.containers, backgroundColor: "#1f6feb"},
          {label: "images", data: data.images, backgroundColor: "#8a99ad"},
        ],
      },
      options: {maintainAspectRatio: false, animation: false, scales: {y: {beginAtZero: true, ticks: {precision: 0}}}},
    });
  }
})();
