"""The persisted network state: a SQLite file of networks and endpoints, guarded by an flock.

Networks are few and read whole. Endpoints (one per attached container: addresses, MACs,
veths, published ports) are rows, read one at a time or by the question asked (the addresses
on one network, the published ports, the container of a name), so a start or a removal at
1,000 bridged containers reads and writes what it changes, not every endpoint: the single JSON
file before took 8.5 ms to parse and 1 ms to write there, once or three times per operation
(issue 19, docs/benchmarks.md). A state.json of an older version is moved in once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from pathlib import Path

import orjson

DB_FILE = "state.db"
OLD_STATE_FILE = "state.json"
LOCK_FILE = "lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
    cid TEXT PRIMARY KEY, name TEXT, ports BLOB, data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS endpoints_by_name ON endpoints (name);
CREATE INDEX IF NOT EXISTS endpoints_publishing ON endpoints (cid) WHERE ports IS NOT NULL;
CREATE TABLE IF NOT EXISTS members (
    network TEXT NOT NULL, cid TEXT NOT NULL, ip TEXT NOT NULL, mac TEXT NOT NULL,
    PRIMARY KEY (network, cid)
);
CREATE INDEX IF NOT EXISTS members_by_cid ON members (cid);
CREATE INDEX IF NOT EXISTS members_by_ip ON members (network, ip);
CREATE INDEX IF NOT EXISTS members_by_mac ON members (network, mac);
"""


def _dump(value) -> bytes:
    # Keys as the json module wrote them: a number as its text.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


class Endpoints:
    """The endpoints of one NetState by container id: read from rows as asked, changes kept
    here (a dict handed out may be edited in place) until the store saves them."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._loaded: dict[str, dict] = {}  # read or set since the last save
        self._saved: dict[str, bytes] = {}  # their rows as last read or saved
        self._gone: set[str] = set()  # popped since the last save

    def _row(self, cid: str) -> dict | None:
        row = self._conn.execute("SELECT data FROM endpoints WHERE cid = ?", (cid,)).fetchone()
        if row is None:
            return None
        self._saved[cid] = bytes(row[0])
        return orjson.loads(row[0])

    def _take(self, cid: str, data) -> dict:
        """The endpoint of row `data`, unless this state has it (changed, or popped)."""
        if cid not in self._loaded:
            self._saved[cid] = bytes(data)
            self._loaded[cid] = orjson.loads(data)
        return self._loaded[cid]

    def get(self, cid: str, default=None):
        if cid in self._gone:
            return default
        if cid not in self._loaded:
            ep = self._row(cid)
            if ep is None:
                return default
            self._loaded[cid] = ep
        return self._loaded[cid]

    def __getitem__(self, cid: str) -> dict:
        ep = self.get(cid)
        if ep is None:
            raise KeyError(cid)
        return ep

    def __contains__(self, cid) -> bool:
        return self.get(cid) is not None

    def __setitem__(self, cid: str, ep: dict) -> None:
        self._gone.discard(cid)
        self._loaded[cid] = ep

    def pop(self, cid: str, default=None):
        ep = self.get(cid)
        if ep is None:
            return default
        del self._loaded[cid]
        self._gone.add(cid)
        return ep

    def items(self) -> list[tuple[str, dict]]:
        """Every endpoint (reads every row: for the rare whole-host passes)."""
        for cid, data in self._conn.execute("SELECT cid, data FROM endpoints"):
            if cid not in self._gone:
                self._take(cid, data)
        return sorted(self._loaded.items())

    def values(self) -> list[dict]:
        return [ep for _, ep in self.items()]

    def __iter__(self):
        return iter([cid for cid, _ in self.items()])

    def __len__(self) -> int:
        return len(self.items())

    def on_network(self, network: str) -> list[tuple[str, dict]]:
        """(container id, endpoint) of every member of `network`, by id."""
        rows = self._conn.execute(
            "SELECT e.cid, e.data FROM members m JOIN endpoints e ON e.cid = m.cid "
            "WHERE m.network = ?",
            (network,),
        )
        found = {cid: self._take(cid, data) for cid, data in rows if cid not in self._gone}
        found |= {cid: ep for cid, ep in self._loaded.items() if network in ep["networks"]}
        return sorted((cid, ep) for cid, ep in found.items() if network in ep["networks"])

    def held(self, network: str, what: str) -> Held:
        """The addresses (`what` "ip") or MACs ("mac") of `network`'s members, as a container
        that answers `in` with one indexed read: a pick tries one or two candidates, so it
        reads no member list (at 1,000 members that took 3.4 ms per start)."""
        return Held(self, network, what)

    def holds(self, network: str, what: str, value: str) -> bool:
        """Whether a member of `network` has address (or MAC) `value`."""
        if any(ep["networks"].get(network, {}).get(what) == value for ep in self._loaded.values()):
            return True
        column = {"ip": "ip", "mac": "mac"}[what]
        rows = self._conn.execute(
            f"SELECT cid FROM members WHERE network = ? AND {column} = ?", (network, value)
        )
        return any(cid not in self._gone and cid not in self._loaded for (cid,) in rows)

    def published(self) -> list[dict]:
        """Every published port of every endpoint (only endpoints that publish are read)."""
        rows = self._conn.execute("SELECT cid, ports FROM endpoints WHERE ports IS NOT NULL")
        found = [
            port
            for cid, ports in rows
            if cid not in self._gone and cid not in self._loaded
            for port in orjson.loads(ports)
        ]
        return found + [p for ep in self._loaded.values() for p in ep.get("ports", [])]

    def named(self, name: str) -> dict | None:
        """The endpoint of the container called `name`, or None."""
        for ep in self._loaded.values():
            if ep.get("name") == name:
                return ep
        for cid, data in self._conn.execute(
            "SELECT cid, data FROM endpoints WHERE name = ?", (name,)
        ):
            if cid not in self._gone and cid not in self._loaded:
                return self._take(cid, data)
        return None

    def write(self) -> None:
        """Write what changed since the last save (inside the caller's transaction)."""
        conn = self._conn
        for cid in self._gone:
            conn.execute("DELETE FROM endpoints WHERE cid = ?", (cid,))
            conn.execute("DELETE FROM members WHERE cid = ?", (cid,))
            self._saved.pop(cid, None)
        self._gone.clear()
        for cid, ep in self._loaded.items():
            data = _dump(ep)
            if self._saved.get(cid) == data:
                continue
            ports = ep.get("ports") or None
            conn.execute(
                "INSERT OR REPLACE INTO endpoints (cid, name, ports, data) VALUES (?, ?, ?, ?)",
                (cid, ep.get("name"), _dump(ports) if ports else None, data),
            )
            conn.execute("DELETE FROM members WHERE cid = ?", (cid,))
            conn.executemany(
                "INSERT INTO members (network, cid, ip, mac) VALUES (?, ?, ?, ?)",
                [(net, cid, n["ip"], n["mac"]) for net, n in ep["networks"].items()],
            )
            self._saved[cid] = data


class Held:
    """What Endpoints.held() returns: `value in held` asks the state."""

    def __init__(self, endpoints: Endpoints, network: str, what: str):
        self._endpoints, self._network, self._what = endpoints, network, what

    def __contains__(self, value) -> bool:
        return self._endpoints.holds(self._network, self._what, value)


class NetState:
    """The state one operation works on: `networks` (name -> record) and `endpoints`."""

    def __init__(self, conn: sqlite3.Connection):
        self.networks: dict[str, dict] = {
            name: orjson.loads(data)
            for name, data in conn.execute("SELECT name, data FROM networks ORDER BY name")
        }
        self._saved_networks = {name: _dump(net) for name, net in self.networks.items()}
        self.endpoints = Endpoints(conn)

    def as_dict(self) -> dict:
        """Everything, as plain data: {"networks": {...}, "endpoints": {...}} (reads every row)."""
        return {"networks": self.networks, "endpoints": dict(self.endpoints.items())}

    def write(self, conn: sqlite3.Connection) -> None:
        """Write the networks and endpoints that changed since the last save."""
        for name in set(self._saved_networks) - set(self.networks):
            conn.execute("DELETE FROM networks WHERE name = ?", (name,))
        for name, net in self.networks.items():
            data = _dump(net)
            if self._saved_networks.get(name) != data:
                conn.execute(
                    "INSERT OR REPLACE INTO networks (name, data) VALUES (?, ?)", (name, data)
                )
        self._saved_networks = {name: _dump(net) for name, net in self.networks.items()}
        self.endpoints.write()


class StateStore:
    """networks_dir/state.db: networks, endpoints (addresses, MACs, ports) of every container.

    A save is one SQLite transaction, so a crash never leaves a half-written allocation. Every
    change runs under an exclusive flock of networks_dir/lock, which serialises concurrent
    starts across threads and processes; readers (list, inspect) need no lock (WAL).
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / DB_FILE
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        """This thread's connection; a forked child, or a file removed (purge), opens anew."""
        conn = getattr(self._local, "conn", None)
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if conn is not None and self._local.key == (os.getpid(), inode):
            return conn
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if inode is None:
            # Created private: it holds every container's addresses and host ports.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            inode = os.stat(self.path).st_ino
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        conn.executescript(_SCHEMA)
        self._local.conn, self._local.key = conn, (os.getpid(), inode)
        return conn

    @contextlib.contextmanager
    def _flock(self):
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor drops the lock

    @contextlib.contextmanager
    def locked(self):
        """Hold the exclusive lock; yields the current state to edit (saved by save())."""
        with self._flock():
            self._move_old_file()
            yield NetState(self._db())

    def load(self) -> NetState:
        """The state to read, without the lock."""
        if (self.directory / OLD_STATE_FILE).exists():
            with self._flock():
                self._move_old_file()
        return NetState(self._db())

    def save(self, state: NetState) -> None:
        """Write what changed in `state`, in one transaction."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            state.write(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def remove(self) -> None:
        """Delete the state (purge: no network, no endpoint left)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _move_old_file(self) -> None:
        """Move the state.json of an older version in (under the lock), then delete it."""
        old = self.directory / OLD_STATE_FILE
        try:
            with open(old, "rb") as f:
                data = orjson.loads(f.read())
        except FileNotFoundError:
            return
        state = NetState(self._db())
        state.networks.update(data.get("networks") or {})
        for cid, ep in (data.get("endpoints") or {}).items():
            state.endpoints[cid] = ep
        self.save(state)
        old.unlink()
