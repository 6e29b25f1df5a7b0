// The build page: sends the form to the REST API (POST /api/v1/images/build/, the session and
// CSRF token of this page), then opens the operation's progress page (streamed log).
// A Dockerfile written in the page becomes a one-file tar context, made here.
(function () {
  "use strict";
  const form = document.getElementById("build-form");
  if (!form) return;

  function octal(value, width) {
    return value.toString(8).padStart(width - 1, "0") + "\0";
  }

  // A POSIX ustar archive holding one file.
  function tarOf(name, text) {
    const data = new TextEncoder().encode(text);
    const header = new Uint8Array(512);
    const put = (str, offset) => header.set(new TextEncoder().encode(str), offset);
    put(name, 0);
    put(octal(0o644, 8), 100);
    put(octal(0, 8), 108);
    put(octal(0, 8), 116);
    put(octal(data.length, 12), 124);
    put(octal(Math.floor(Date.now() / 1000), 12), 136);
    put("        ", 148);
    put("0", 156);
    put("ustar\0" + "00", 257);
    let sum = 0;
    header.forEach((b) => { sum += b; });
    put(octal(sum, 7) + " ", 148);
    const padded = Math.ceil(data.length / 512) * 512;
    const out = new Uint8Array(512 + padded + 1024);
    out.set(header, 0);
    out.set(data, 512);
    return new Blob([out], { type: "application/x-tar" });
  }

  function showErrors(lines) {
    const box = document.getElementById("build-errors");
    box.innerHTML = "";
    lines.forEach((line) => {
      const li = document.createElement("li");
      li.textContent = line;
      box.appendChild(li);
    });
    box.hidden = lines.length === 0;
  }

  function flatten(detail, prefix) {
    if (Array.isArray(detail)) return detail.flatMap((d) => flatten(d, prefix));
    if (detail && typeof detail === "object") {
      if (detail.detail || detail.message) return [`${prefix}${detail.detail || detail.message}`];
      return Object.entries(detail).flatMap(([k, v]) => flatten(v, `${k}: `));
    }
    return [`${prefix}${detail}`];
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const errors = [];
    const body = new FormData();
    const file = document.getElementById("build-context").files[0];
    const text = document.getElementById("build-dockerfile-text").value;
    const path = document.getElementById("build-dockerfile").value.trim() || "Dockerfile";
    if (file) body.append("context", file);
    else if (text.trim()) body.append("context", tarOf(path, text.endsWith("\n") ? text : text + "\n"), "context.tar");
    else errors.push("source: upload a context or write a Dockerfile");
    const args = {};
    document.getElementById("build-args").value.split("\n").forEach((line) => {
      line = line.trim();
      if (!line || line.startsWith("#")) return;
      const at = line.indexOf("=");
      if (at < 1) errors.push(`build arguments: invalid line ${JSON.stringify(line)} (use KEY=value)`);
      else args[line.slice(0, at).trim()] = line.slice(at + 1);
    });
    if (errors.length) return showErrors(errors);
    body.append("dockerfile", path);
    body.append("build_args", JSON.stringify(args));
    const tag = document.getElementById("build-tag").value.trim();
    if (tag) body.append("tag", tag);
    body.append("host", document.getElementById("build-host").value);
    const team = document.getElementById("build-team").value;
    if (team) body.append("team", team);
    body.append("no_cache", document.getElementById("build-no-cache").checked ? "true" : "false");
    const token = (document.cookie.split("; ").find((c) => c.startsWith("csrftoken=")) || "=").split("=")[1];
    document.getElementById("build-submit").disabled = true;
    try {
      const answer = await fetch(form.dataset.api, {
        method: "POST", body, credentials: "same-origin", headers: { "X-CSRFToken": token },
      });
      const data = await answer.json().catch(() => ({ detail: `HTTP ${answer.status}` }));
      if (!answer.ok) return showErrors(flatten(data, ""));
      window.location = form.dataset.progress.replace("/0/", `/${data.operation.id}/`);
    } finally {
      document.getElementById("build-submit").disabled = false;
    }
  });
})();
