"""GET /containers/{id}/stats and /top: the host agent's samples in Docker's shapes.

The agent reads the container's cgroup and /proc (agent.container_stats, agent.container_top,
the same calls as the REST API's). Docker's clients compute CPU % as the container's CPU time
over the system's CPU time between two samples, times the online CPUs; Berth reports the
system's CPU time as the sample's wall-clock time times the host's online CPUs, so the ratio is
the container's share of the host whatever the host's load. The decision is taken (and
audited) once per call; a stream re-signs each sample's request for that decision.
"""

import asyncio
import json
import shlex
import time
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse

from dockerapi import render
from dockerapi.errors import DockerError, bad_request, not_supported
from dockerapi.refs import docker_id, find_container
from operations import dispatch
from rbac import gate

INTERVAL_SECONDS = 1.0  # Docker sends one sample a second
MAX_STREAM_SECONDS = 24 * 3600  # a forgotten `docker stats` ends after a day
_PS_COLUMNS = {"UID", "PID", "PPID", "TIME", "CMD"}


def online_cpus(host) -> int:
    """The host's online CPUs from its heartbeat ("0-3,6" -> 5); 1 when unknown."""
    spec = (host.info or {}).get("cpus") or ""
    count = 0
    for part in filter(None, str(spec).split(",")):
        first, _, last = part.partition("-")
        try:
            count += int(last or first) - int(first) + 1
        except ValueError:
            return 1
    return max(count, 1)


def _iso(seconds: float | None) -> str:
    if not seconds:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _cpu(sample: dict | None, cpus: int) -> dict:
    if not sample:
        return {"cpu_usage": {"total_usage": 0}, "throttling_data": {}}
    usage = int(sample.get("cpu_usage_ns") or 0)
    return {
        "cpu_usage": {"total_usage": usage, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "system_cpu_usage": int(float(sample.get("read_at") or 0) * 1e9) * cpus,
        "online_cpus": cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def shape(container, sample: dict, previous: dict | None) -> dict:
    """One sample (and the one before it, for CPU %) in Docker's stats format."""
    cpus = online_cpus(container.host)
    limit = sample.get("memory_limit") or (container.host.info or {}).get("mem_total") or 0
    io = [
        {"major": 0, "minor": 0, "op": op, "value": int(sample.get(f"blkio_{op}_bytes") or 0)}
        for op in ("read", "write")
    ]
    return {
        "read": _iso(sample.get("read_at")),
        "preread": _iso((previous or {}).get("read_at")),
        "id": docker_id(container),
        "name": f"/{container.name}",
        "num_procs": 0,
        "pids_stats": {
            "current": int(sample.get("pids_current") or 0),
            **({"limit": sample["pids_limit"]} if sample.get("pids_limit") else {}),
        },
        "blkio_stats": {
            "io_service_bytes_recursive": io,
            "io_serviced_recursive": None,
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "cpu_stats": _cpu(sample, cpus),
        "precpu_stats": _cpu(previous, cpus),
        "memory_stats": {
            "usage": int(sample.get("memory_usage") or 0),
            "max_usage": int(sample.get("memory_max_usage") or 0),
            "limit": int(limit),
            "failcnt": int(sample.get("oom_kills") or 0),
            "stats": {},
        },
        "networks": sample.get("networks") or {},
    }


def _zero(container) -> dict:
    """What Docker sends for a container that is not running: zeroed counters."""
    return shape(container, {"read_at": None}, None)


def stats(call, ref):
    """GET /containers/{id}/stats?stream=&one-shot=."""
    stream = call.flag("stream", True)
    one_shot = call.flag("one-shot")
    if one_shot and stream:
        raise bad_request("cannot have stream=true and one-shot=true")
    container = find_container(call, ref, "container.stats")
    decision = gate.authorize(call.user, "container.stats", container, summary=call.summary())
    running = render.status_of(container) in ("running", "paused")

    def sample():
        if not running:
            return None
        claims = dispatch.decision_claims(decision, object_id=container.pk)
        try:
            return dispatch.call_host(
                container.host, "agent.container_stats", [container.pk, {}], decision=claims
            )
        except Exception as exc:  # stopped under our feet: Docker shows zeroes
            if getattr(exc, "status", None) in (404, 409):
                return None
            raise

    if not stream:
        first = sample()
        if first is None:
            return JsonResponse(_zero(container))
        if one_shot:
            return JsonResponse(shape(container, first, None))
        # Docker's non-streaming answer carries two samples a second apart (for CPU %).
        time.sleep(INTERVAL_SECONDS)
        second = sample() or first
        return JsonResponse(shape(container, second, first))

    def sample_closed():
        try:
            return sample()
        finally:
            connection.close()

    async def body():
        previous = None
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        while time.monotonic() < deadline:
            current = await sync_to_async(sample_closed, thread_sensitive=False)()
            if current is None:
                yield (json.dumps(_zero(container)) + "\n").encode()
            else:
                yield (json.dumps(shape(container, current, previous)) + "\n").encode()
            previous = current
            await asyncio.sleep(INTERVAL_SECONDS)

    return StreamingHttpResponse(body(), content_type="application/json")


def top(call, ref):
    """GET /containers/{id}/top?ps_args=: the columns of `ps -o` that Berth reads from /proc
    (user, pid, ppid, time, cmd); other ps options answer 501."""
    container = find_container(call, ref, "container.top")
    columns = _columns(call.query.get("ps_args") or "")
    decision = gate.authorize(call.user, "container.top", container, summary=call.summary())
    if render.status_of(container) not in ("running", "paused"):
        raise DockerError(409, f"container {docker_id(container)} is not running")
    claims = dispatch.decision_claims(decision, object_id=container.pk)
    result = dispatch.call_host(
        container.host, "agent.container_top", [container.pk, {}], decision=claims
    )
    titles = list(result.get("titles") or [])
    rows = [list(row) for row in result.get("processes") or []]
    if columns:
        picks = [titles.index(c) for c in columns]
        titles = columns
        rows = [[row[i] for i in picks] for row in rows]
    return JsonResponse({"Titles": titles, "Processes": rows})


def _columns(ps_args: str) -> list[str]:
    """`-ef`, `aux` and the like show the default table; `-o a,b` picks Berth's columns."""
    try:
        words = shlex.split(ps_args)
    except ValueError:
        raise bad_request(f"invalid ps_args {ps_args!r}") from None
    columns: list[str] = []
    while words:
        word = words.pop(0)
        if word in ("-o", "o", "-O") and words:
            names = [c.strip().upper() for c in words.pop(0).split(",") if c.strip()]
            names = [
                "UID" if c in ("USER", "UID") else "CMD" if c in ("ARGS", "COMMAND", "COMM") else c
                for c in names
            ]
            unknown = [c for c in names if c not in _PS_COLUMNS]
            if unknown:
                raise not_supported(
                    f"the ps column {unknown[0].lower()!r} (Berth shows uid, pid, ppid, time, cmd)"
                )
            columns += names
        elif word.lstrip("-").isalpha() and len(word) <= 8:
            continue  # selection flags (-e, -f, aux): Berth always lists every process
        else:
            raise not_supported(f"the ps option {word!r}")
    return columns
