"""A small process that makes containers for a big one: the verbs that fork, served over a socket.

Forking costs in proportion to the caller's memory: here a 190 MB interpreter (the host agent,
with Django and Celery loaded) takes about 25 ms per fork and exit against 0.7 ms for a small
one, and a create forks three times. So the agent hands `create`, `run`, `start` and `restart`
to this server, a fresh interpreter that imports only the runtime, over a private socketpair
(JSON lines). It gets the caller's RuntimeConfig (as the shim does), works on the same state on
disk (every verb takes the runtime's own file locks), re-parses each spec with
`ContainerSpec.from_dict`, and exits when its caller's end of the socket closes.

    python -m runtime.forkserver FD CONFIG_JSON    # FD: the server's end of the socketpair
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from runtime import errors
from runtime.spec import ContainerSpec

REPO = Path(__file__).resolve().parents[1]


def _create(rt, spec):
    return rt.create(ContainerSpec.from_dict(spec))


def _run(rt, spec, auto_remove=False):
    return rt.run(ContainerSpec.from_dict(spec), auto_remove=auto_remove)


def _start(rt, ref, checkpoint=None, restart_count=0, unless_user_stopped=False):
    if checkpoint:
        return rt.start(ref, checkpoint=checkpoint)
    return rt.start(ref, restart_count=restart_count, unless_user_stopped=unless_user_stopped)


def _restart(rt, ref, timeout=None, run_pid=None):
    return rt.restart(ref, timeout, run_pid=run_pid)


VERBS = {"create": _create, "run": _run, "start": _start, "restart": _restart}


def serve(sock: socket.socket, rt) -> None:
    """Answer requests one at a time until the caller closes its end."""
    stream = sock.makefile("rwb")
    for line in stream:
        try:
            request = json.loads(line)
            reply = {"result": VERBS[request["verb"]](rt, *request["args"])}
        except errors.BerthError as err:
            reply = {"error": type(err).__name__, "message": str(err)}
        except Exception as err:  # a bug: the caller reports it as an internal error
            reply = {"error": "", "message": f"{type(err).__name__}: {err}"}
        try:
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()
        except OSError:  # the caller died while we worked; its recovery finds the container
            return


def config_json(config) -> str:
    """A RuntimeConfig in the JSON form that postexit.config_from reads back."""
    return json.dumps(
        {
            "root": str(config.root),
            "run_root": str(config.run_root),
            "prefix": config.prefix,
            "cgroup_root": str(config.cgroup_root),
            "default_pids_limit": config.default_pids_limit,
            "extra": config.extra,
        }
    )


def main(argv=None) -> int:
    """Serve on the inherited descriptor, with the caller's runtime configuration."""
    from runtime.api import Runtime
    from runtime.container.postexit import config_from

    fd, config = (argv or sys.argv[1:])[:2]
    os.set_inheritable(int(fd), False)  # never into a shim or a container's program
    sock = socket.socket(fileno=int(fd))
    serve(sock, Runtime(config_from(json.loads(config))))
    return 0


class ServerDied(errors.KernelError):
    """The fork server exited or stopped answering; the next call starts a new one."""


class Client:
    """The caller's side: one server per process, started on first use, restarted if it died."""

    def __init__(self, config):
        self.config = config
        self.lock = threading.Lock()  # one request at a time on the socket (threads pool)
        self.proc = None
        self.sock = None
        self.stream = None
        self.pid = None

    def _spawn(self) -> None:
        mine, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime.forkserver",
                str(theirs.fileno()),
                config_json(self.config),
            ],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(REPO),
        )
        theirs.close()
        self.sock, self.stream, self.pid = mine, mine.makefile("rwb"), os.getpid()

    def _drop(self) -> None:
        for closable in (self.stream, self.sock):
            if closable is not None:
                with contextlib.suppress(OSError):  # a buffered write to a dead server
                    closable.close()
        if self.proc is not None and self.pid == os.getpid():
            try:
                self.proc.wait(10)  # it exits on EOF; reap it
            except subprocess.TimeoutExpired:  # stuck: the runtime's kill-safe create cleans up
                self.proc.kill()
                self.proc.wait()
        self.proc = self.sock = self.stream = self.pid = None

    def ensure(self) -> None:
        """Start this process's server now (it takes a moment to import the runtime)."""
        with self.lock:
            self._ensure()

    def _ensure(self) -> None:
        if self.pid != os.getpid():
            # First use, or a forked child of the process that started it: its own server.
            self.proc = self.sock = self.stream = None
            self._spawn()

    def call(self, verb: str, *args):
        """Run `verb` in the server; returns its result or raises the runtime's error."""
        with self.lock:
            self._ensure()
            try:
                self.stream.write(json.dumps({"verb": verb, "args": list(args)}).encode() + b"\n")
                self.stream.flush()
                line = self.stream.readline()
            except OSError as err:
                self._drop()
                raise ServerDied(f"the runtime's fork server failed: {err}") from None
            if not line:
                self._drop()
                raise ServerDied("the runtime's fork server exited")
        reply = json.loads(line)
        if "error" not in reply:
            return reply["result"]
        kind = getattr(errors, reply["error"], None) if reply["error"] else None
        if isinstance(kind, type) and issubclass(kind, errors.BerthError):
            raise kind(reply["message"])
        raise RuntimeError(f"in the runtime's fork server: {reply['message']}")


def _spec_dict(spec) -> dict:
    # Runtime takes a ContainerSpec or its dict form; the server parses it again either way.
    return spec.to_dict() if isinstance(spec, ContainerSpec) else spec


class LeanRuntime:
    """A Runtime whose forking verbs run in a fork server; everything else runs in-process."""

    def __init__(self, rt, client: Client | None = None):
        self._rt = rt
        self._client = client or Client(rt.config)

    def __getattr__(self, name):
        return getattr(self._rt, name)

    def create(self, spec) -> dict:
        """As Runtime.create, in the fork server."""
        return self._client.call("create", _spec_dict(spec))

    def run(self, spec, auto_remove: bool = False) -> dict:
        """As Runtime.run, in the fork server."""
        return self._client.call("run", _spec_dict(spec), auto_remove)

    def start(
        self,
        ref: str,
        checkpoint: str | None = None,
        restart_count: int = 0,
        *,
        unless_user_stopped: bool = False,
    ) -> dict:
        """As Runtime.start (from a checkpoint when named), in the fork server."""
        return self._client.call("start", ref, checkpoint, restart_count, unless_user_stopped)

    def restart(self, ref: str, timeout: int | None = None, *, run_pid: int | None = None) -> dict:
        """As Runtime.restart, in the fork server."""
        if run_pid:
            return self._client.call("restart", ref, timeout, run_pid)
        return self._client.call("restart", ref, timeout)


if __name__ == "__main__":
    sys.exit(main())
