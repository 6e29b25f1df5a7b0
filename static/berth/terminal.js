// The web terminal: xterm.js <-> WebSocket. Output arrives as binary frames; input, resize and
// detach go out as small JSON messages. The server decides and audits when the socket opens.
(function () {
  "use strict";
  const box = document.getElementById("terminal");
  if (!box || typeof Terminal === "undefined") return;
  const status = document.getElementById("terminal-status");
  const term = new Terminal({cursorBlink: true, convertEol: false, scrollback: 5000});
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  window.berthTerminal = term;  // for tests and the browser console

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({mode: box.dataset.mode, cmd: box.dataset.cmd, user: box.dataset.user, cols: term.cols, rows: term.rows});
  // The production server takes WebSockets on a port of its own (deploy/gunicorn-ws.conf.py);
  // the session cookie goes along, cookies are not bound to a port.
  const port = box.dataset.wsPort;
  const host = port && port !== "0" ? location.hostname + ":" + port : location.host;
  const ws = new WebSocket(scheme + "//" + host + box.dataset.ws + "?" + query.toString());
  ws.binaryType = "arraybuffer";
  const send = (msg) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); };
  const setStatus = (text) => { status.textContent = text; box.dataset.state = text; };

  ws.onopen = () => setStatus("connected");
  ws.onmessage = function (ev) {
    if (typeof ev.data !== "string") { term.write(new Uint8Array(ev.data)); return; }
    const msg = JSON.parse(ev.data);
    if (msg.type === "status") {
      setStatus(msg.state + (msg.message ? ": " + msg.message : ""));
      if (msg.state === "ready") term.focus();
    }
  };
  ws.onclose = function (ev) {
    if (!/closed|exited|detached|error/.test(status.textContent)) setStatus("closed (" + ev.code + ")");
    term.write("\r\n\x1b[90m[session closed]\x1b[0m\r\n");
  };
  term.onData((data) => send({type: "input", data: data}));
  term.onResize((size) => send({type: "resize", cols: size.cols, rows: size.rows}));
  window.addEventListener("resize", () => fit.fit());
  document.getElementById("terminal-detach").addEventListener("click", function () {
    send({type: "detach"});
    setStatus("detached");
    ws.close(1000);
  });
})();
