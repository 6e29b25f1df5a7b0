"""Where the agent's main process grows: an opt-in diagnostic for soaks (bench/churn_soak.py).

Off unless BERTH_AGENT_MEMTRACE names a file. Then a daemon thread appends to that file every
BERTH_AGENT_MEMTRACE_SECONDS (default 300) the live objects by type that grew since the last
dump (gc's census: cheap, no tracing cost between dumps) and, when
BERTH_AGENT_MEMTRACE_FRAMES is above 0, starts tracemalloc with that many frames and appends
the top allocation differences by traceback against the previous dump (tracemalloc slows
every allocation and costs memory of its own: for finding a leak, not for measuring one).
Each dump also gives pymalloc's and glibc malloc's totals; BERTH_AGENT_MEMTRACE_TRIM=1 then
calls malloc_trim(0) and notes what that gave back (free heap the process kept).
"""

import ctypes
import gc
import linecache
import logging
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter

log = logging.getLogger(__name__)

TOP = 25


def start() -> threading.Thread | None:
    """Start the dumping thread if BERTH_AGENT_MEMTRACE is set; returns it (or None)."""
    path = os.environ.get("BERTH_AGENT_MEMTRACE")
    if not path:
        return None
    seconds = float(os.environ.get("BERTH_AGENT_MEMTRACE_SECONDS", "300"))
    frames = int(os.environ.get("BERTH_AGENT_MEMTRACE_FRAMES", "0"))
    if frames > 0 and not tracemalloc.is_tracing():
        tracemalloc.start(frames)
    thread = threading.Thread(
        target=_run, args=(path, seconds), name="berth-agent-memtrace", daemon=True
    )
    thread.start()
    return thread


def census() -> Counter:
    """Live gc-tracked objects by type (module and name)."""
    return Counter(_name(type(o)) for o in gc.get_objects())


def _name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


# The lines of sys._debugmallocstats() that say whether pymalloc's arenas hold live objects
# or free space pinned by a few survivors (fragmentation).
_OBMALLOC_KEYS = (
    "# arenas allocated current",
    "# arenas highwater mark",
    "# bytes in allocated blocks",
    "# bytes in available blocks",
    "# bytes lost to pool headers",
)


def allocators() -> str:
    """One line: pymalloc's arenas and blocks, and glibc malloc's arenas (all threads')."""
    parts = [f"pyblocks {sys.getallocatedblocks()}"]
    for line in _stderr_of(sys._debugmallocstats):
        if line.startswith(_OBMALLOC_KEYS):
            name, _, value = line.rpartition("=")
            parts.append(f"{' '.join(name.split()[1:])} {value.strip()}")
    try:
        libc = ctypes.CDLL(None)
        # malloc_stats() covers every thread's arena (mallinfo2 only the main one); its
        # last "system bytes" and "in use bytes" are the totals, mmap'd chunks included.
        totals = [
            line.split("=")[1].strip()
            for line in _stderr_of(libc.malloc_stats)
            if line.startswith(("system bytes", "in use bytes"))
        ]
        parts.append(f"malloc system {totals[-2]} in use {totals[-1]}")
    except (OSError, AttributeError, IndexError):
        pass
    try:
        # SQLite's own allocations (page caches, statements) of every connection: Django's
        # and the runtime index's, one per thread.
        sqlite = ctypes.CDLL("libsqlite3.so.0")
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        parts.append(f"sqlite {sqlite.sqlite3_memory_used()}")
    except (OSError, AttributeError):
        pass
    return "; ".join(parts)


def _stderr_of(call) -> list[str]:
    """What `call()` writes to the C stderr (fd 2 pointed at a file for the call: a
    diagnostic, so another thread's log line may land there meanwhile)."""
    with tempfile.TemporaryFile("w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            call()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        return out.readlines()


def rss_kib() -> int:
    """This process's resident private dirty memory (KiB, smaps_rollup)."""
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    return 0


def trim() -> str:
    """malloc_trim(0): hand free heap pages back; says how much private memory that freed."""
    before = rss_kib()
    ctypes.CDLL(None).malloc_trim(0)
    return f"malloc_trim: private dirty {before} -> {rss_kib()} KiB"


def _run(path: str, seconds: float) -> None:
    began = time.monotonic()
    counts = census()
    snap = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
    while True:
        time.sleep(seconds)
        try:
            now_counts = census()
            lines = [f"== {(time.monotonic() - began) / 60:.1f} min, pid {os.getpid()}"]
            lines.append(f"  {allocators()}")
            if os.environ.get("BERTH_AGENT_MEMTRACE_TRIM") == "1":
                lines.append(f"  {trim()}")
            grown = (now_counts - counts).most_common(TOP)
            lines += [f"  +{n:7d} {name} (now {now_counts[name]})" for name, n in grown]
            counts = now_counts
            if snap is not None:
                # Without this thread's own formatting (linecache keeps the sources it read).
                now_snap = tracemalloc.take_snapshot().filter_traces(
                    [
                        tracemalloc.Filter(False, tracemalloc.__file__),
                        tracemalloc.Filter(False, linecache.__file__),
                    ]
                )
                lines.append(
                    f"  traced {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB, tracemalloc's "
                    f"own {tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MiB"
                )
                for stat in now_snap.compare_to(snap, "traceback")[:TOP]:
                    lines.append(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d}")
                    lines += [f"      {line}" for line in stat.traceback.format()[-8:]]
                snap = now_snap
            with open(path, "a") as out:
                out.write("\n".join(lines) + "\n")
        except Exception as err:  # a diagnostic: never the agent's problem
            log.warning("memtrace: %s", err)
