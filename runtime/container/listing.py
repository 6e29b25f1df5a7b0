"""Runtime.list() at a cost that barely grows with the number of containers.

Each container's composed list() entry (its "view") is kept in the index beside its record
(runtime/container/index.py) and served again while nothing about the container changed. What
can change, and how a kept view notices:

- a file of the container (record, state, the shim's exit record, its pid file, the network
  file, the exec FIFO): every one is written by a rename into, created in or removed from one
  of the container's two directories, which changes that directory's ctime. The view's key is
  the two ctimes, read before the container is observed; a key younger than RACY_NS is never
  stored (a change in the same clock tick would leave the ctime equal);
- a row a writer has marked dirty: recomputed from the files;
- the freezer (pause, unpause) and anything else done under the container's lock: releasing
  the lock bumps the view's generation, and a view observed before is not stored;
- the container's processes ending with nobody writing anything (its monitor killed, or a
  reboot): the view keeps the program (`/proc/<pid>/exe`) of its shim and init, read again on
  each list: a process that has exited has none, a zombie included, and a pid reused since
  most likely names another program. The reconcile pass (boot.recover's reap,
  Runtime.reconcile) observes every container in full, with start times, and forgets every
  view.

So list() costs one index query, two stat calls, two readlink calls and one JSON decode per
running container, instead of a dozen file reads (reading /proc/<pid>/stat for a start time
costs fifty times a readlink here).
"""

from __future__ import annotations

import contextlib
import os
import time

import orjson

from runtime.container import status as sm
from runtime.container.viewcheck import ctimes, exe, key_text, open_dir, processes_unchanged
from runtime.errors import NotFound

# A directory changed this recently may change again within the same ctime tick: not kept.
RACY_NS = 1_000_000_000

# Statuses whose view depends on processes being alive (checked on every list).
_LIVE = (sm.RUNNING, sm.PAUSED, sm.CREATED, sm.RESTARTING)


def list_containers(store, runtime, spec: bool = True) -> list[dict]:
    """Every container of `store` as Runtime.list() answers, oldest first.

    `runtime()` gives the Runtime that observes containers without a valid view: called only
    then, so `ps` with every view valid never imports runtime.api. `spec=False` (ps): entries
    may come without their spec.
    """
    on_disk = store.ids()
    views = store.index.views(spec=spec)
    present = set(on_disk)
    gone = [cid for cid in views if cid not in present]
    if gone:
        store.index.drop(gone)
    cdir = open_dir(store.config.containers_dir)
    rdir = open_dir(store.config.run_containers_dir)
    if cdir < 0:
        return []
    result, todo = [], {}
    try:
        for cid in on_disk:
            dirty, gen, vkey, view = views.get(cid, (True, 0, None, None))
            key = ctimes(cdir, rdir, cid)
            if not dirty and view is not None and vkey == key_text(key):
                entry = orjson.loads(view)  # at 1,000 views: 7 ms, json took 27
                if processes_unchanged(entry.pop("_procs", None)):
                    result.append(entry)
                    continue
            todo[cid] = (gen, key)
    finally:
        os.close(cdir)
        if rdir >= 0:
            os.close(rdir)
    if todo:
        result += _observe_all(store, runtime(), todo)
    return sorted(result, key=lambda s: s["created"])


def _observe_all(store, rt, todo: dict) -> list[dict]:
    """Observe the containers of `todo` ({id: (generation, key)}) from their files and keep
    their views; returns their entries."""
    rows = store.index.rows(only=todo)
    found, keep = [], []
    now = time.time_ns()
    for cid, (gen, key) in todo.items():
        row = rows.get(cid)
        try:
            if row is not None and not row[2]:
                rec, state = row[0], row[1]
            else:
                _, rec, state = store._from_files(cid, write=row is None)
        except NotFound:
            continue  # removed meanwhile
        if not rec or store.abandoned(rec):
            continue
        obs = sm.observe(store.paths(cid), rt._frozen(cid))
        if obs["status"] == sm.STOPPED and not state.get("started_at"):
            obs["status"] = sm.CREATED  # created, never started, no process waiting
        entry = rt._compose(cid, rec, obs, state)
        found.append(entry)
        if rec.get("creating") or now - max(key) < RACY_NS or (row is not None and row[2]):
            continue  # still being made, or changed too recently to trust the key
        pids = [p for p in (obs["shim_pid"], obs["pid"]) if p] if obs["status"] in _LIVE else []
        procs = [(pid, exe(pid)) for pid in pids]
        if any(program is None for _, program in procs):
            continue  # ended meanwhile (or not ours to look at): observed again next time
        with contextlib.suppress(TypeError, ValueError):
            view = _text({**entry, "_procs": procs})
            keep.append((cid, gen, key_text(key), view))
    if keep:
        store.index.store_views(keep)
    return found


def _text(value) -> str:
    """JSON text for a column SQLite's JSON functions read (`ps` strips the spec in SQL)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
