#!/usr/bin/env python
"""Fairness (issue 20): team B's create latency on an idle host next to a host that team A loads.

A throwaway Berth (bench/served_berth.py: its own Redis, SQLite, agent with both lanes, web
server). Team B creates and starts containers one after the other through the REST API
(`POST /api/v1/containers/?wait=30`, busybox `sleep 1000`, removed untimed after each sample):

  idle    nothing else runs on the host;
  loaded  team A has just asked for 50 stops with a 60 s grace period (busybox `sleep` as PID 1
          ignores SIGTERM, so each lasts its whole grace period) and a large pull from a local
          registry throttled by this script (a docker-registry behind a slow TCP proxy), all
          still pending while B's samples run.

It prints median and p99 of both and the ratio loaded p99 / idle p99 (target: at most 2).
The pull needs `docker-registry` and `skopeo` (Debian packages); without them it is skipped.

    .venv/bin/python bench/fairness.py [--samples 100] [--layer-mb 64] [--rate-kb 1024]
"""

import argparse
import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "registry"))

from served_berth import ServedBerth, wait_until  # noqa: E402

TEAM_A, TEAM_B = "team-a", "bench"


def call(conn, method: str, path: str, body=None, token: str = ""):
    """One JSON request on a kept-alive connection; returns (status, parsed body)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw or b"null")
    except ValueError:
        return response.status, raw.decode(errors="replace")


def create(conn, token, team, name, *, wait=True):
    """Create and start a busybox `sleep 1000`; returns (milliseconds, container id)."""
    body = {
        "team": team,
        "start": True,
        "spec": {
            "image": "busybox",
            "name": name,
            "command": ["sleep", "1000"],
            "network": {"mode": "none"},
        },
    }
    start = time.perf_counter()
    status, data = call(
        conn, "POST", "/api/v1/containers/?wait=30" if wait else "/api/v1/containers/", body, token
    )
    elapsed = (time.perf_counter() - start) * 1000
    if status not in (200, 202) or not isinstance(data, dict):
        raise RuntimeError(f"create: {status} {data!r:.400}")
    if wait and data["operation"]["state"] != "succeeded":
        raise RuntimeError(f"create failed: {data!r:.400}")
    return elapsed, data["container"]["id"]


def remove(conn, token, cid) -> None:
    """Remove a container (untimed)."""
    call(conn, "DELETE", f"/api/v1/containers/{cid}/?wait=30&force=true", None, token)


def p99(values) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(0.99 * len(ordered)) - 1))]


def samples(conn, token, n, tag) -> list[float]:
    """Team B's create latencies, each container removed after its sample (untimed)."""
    out = []
    for i in range(n):
        ms, cid = create(conn, token, TEAM_B, f"b{tag}{i}")
        out.append(ms)
        remove(conn, token, cid)
    return out


class SlowProxy:
    """A TCP proxy that sends the registry's answers at `rate` bytes per second."""

    def __init__(self, upstream_port: int, rate: int):
        self.upstream, self.rate = ("127.0.0.1", upstream_port), rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, 0), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(server, client, self.rate), daemon=True
            ).start()

    def _pump(self, src, dst, rate):
        with contextlib.suppress(OSError):
            while not self.closing:
                data = src.recv(16384 if rate else 65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)

    def close(self):
        self.closing = True
        self.listener.close()


def start_pull(base: Path, layer_mb: int, rate_kb: int):
    """A registry with one large image behind a slow proxy; returns (ref, cleanup) or None."""
    try:
        from registry_helpers import REGISTRY_BIN, SKOPEO, RegistryServer, make_oci_layout, skopeo
    except ImportError:
        return None
    if REGISTRY_BIN is None or SKOPEO is None:
        return None
    (base / "registry").mkdir()
    registry = RegistryServer(base / "registry")
    layout = base / "layout"
    make_oci_layout(layout, [{"big.bin": os.urandom(layer_mb * 1024 * 1024)}])
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{layout}:latest",
        f"docker://{registry.host}/big/app:1",
    )
    proxy = SlowProxy(registry.port, rate_kb * 1024)

    def cleanup():
        proxy.close()
        registry.stop()

    return f"127.0.0.1:{proxy.port}/big/app:1", cleanup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--stops", type=int, default=50)
    parser.add_argument("--layer-mb", type=int, default=64)
    parser.add_argument("--rate-kb", type=int, default=1024)
    parser.add_argument("--settings", default="config.settings.dev")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-fair-"))
    (base / "berth").mkdir()
    berth = ServedBerth(base / "berth", args.settings)
    cleanup_pull = None
    try:
        berth.start(["runserver"])
        # start() waits for the first " ready." line: the long lane's may come first.
        wait_until(
            lambda: any(
                " ready." in line and "agent@" in line for line in berth.log("agent").splitlines()
            ),
            60,
            "the short lane's worker",
        )
        time.sleep(2)  # its first heartbeat, which placement wants
        berth.manage(
            "shell",
            "-c",
            f"from accounts.models import Team; Team.objects.get_or_create(name={TEAM_A!r})",
        )
        conn = http.client.HTTPConnection("127.0.0.1", berth.ports["runserver"], timeout=120)
        token, tag = berth.token, secrets.token_hex(2)
        samples(conn, token, 5, f"w{tag}")  # warm-up: pool processes, fork servers, caches

        idle = samples(conn, token, args.samples, f"i{tag}")

        # Team A: containers to stop, created untimed before the load starts.
        a_ids = [create(conn, token, TEAM_A, f"a{tag}{i}")[1] for i in range(args.stops)]
        pulled = start_pull(base, args.layer_mb, args.rate_kb)
        pull_op = None
        if pulled:
            ref, cleanup_pull = pulled
            status, data = call(
                conn,
                "POST",
                "/api/v1/images/pull/",
                {"ref": ref, "team": TEAM_A, "host": berth.host},
                token,
            )
            pull_op = data["operation"]["id"] if status == 202 else None
        stop_ops = []
        for cid in a_ids:
            status, data = call(
                conn, "POST", f"/api/v1/containers/{cid}/stop/", {"timeout": 60}, token
            )
            if status != 202:
                raise RuntimeError(f"stop: {status} {data!r:.300}")
            stop_ops.append(data["operation"]["id"])
        began = time.monotonic()
        loaded = samples(conn, token, args.samples, f"l{tag}")
        loaded_seconds = time.monotonic() - began
        pending = sum(
            call(conn, "GET", f"/api/v1/operations/{op}/", None, token)[1]["state"]
            in ("pending", "running")
            for op in stop_ops
        )
        pull_state = (
            call(conn, "GET", f"/api/v1/operations/{pull_op}/", None, token)[1]["state"]
            if pull_op
            else "skipped (no docker-registry/skopeo)"
        )

        print(f"team B create+start over the API, {args.samples} samples each (ms)")
        print(f"{'host':<8} {'median':>8} {'p99':>8}")
        print(f"{'idle':<8} {statistics.median(idle):8.1f} {p99(idle):8.1f}")
        print(
            f"{'loaded':<8} {statistics.median(loaded):8.1f} {p99(loaded):8.1f}"
            f"   ({loaded_seconds:.0f} s of samples; the stops' grace is 60 s)"
        )
        ratio = p99(loaded) / p99(idle)
        print(
            f"ratio loaded/idle: median {statistics.median(loaded) / statistics.median(idle):.2f}, p99 {ratio:.2f} (target <= 2)"
        )
        print(
            f"while sampling: {pending}/{len(stop_ops)} of team A's stops still pending at the end; "
            f"pull of {args.layer_mb} MiB at {args.rate_kb} KiB/s: {pull_state}"
        )
        for cid in a_ids:
            remove(conn, token, cid)
        return 0 if ratio <= 2 else 1
    finally:
        if cleanup_pull:
            cleanup_pull()
        berth.stop()
        shutil.rmtree(base, ignore_errors=True)  # the registry's storage and the image layout


if __name__ == "__main__":
    sys.exit(main())
