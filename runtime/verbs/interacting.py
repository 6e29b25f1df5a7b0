"""Runtime verbs that reach into a running container: exec, attach, resize."""

from __future__ import annotations

import os

from runtime.container import status as sm
from runtime.errors import InvalidSpec, InvalidState


class InteractVerbs:
    """Exec, exec uid lookup, attach socket, resize (mixed into runtime.api.Runtime)."""

    def exec(self, ref: str, argv, env=(), user=None, workdir=None, tty=False) -> tuple[int, bytes]:
        """Run `argv` inside the running container; return (exit code, combined output)."""
        from runtime.container import execute

        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        sm.check("exec", rec["name"], obs["status"])
        return execute.run(
            self, rec, obs["pid"], list(argv), env=list(env), user=user, workdir=workdir, tty=tty
        )

    def exec_uid(self, ref: str, user=None) -> int:
        """The uid an exec as `user` (None: the container's own user) runs as, read from the
        container's /etc/passwd without following links out of its root."""
        from runtime.container import safepath

        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        sm.check("exec", rec["name"], obs["status"])
        config = (rec.get("image_config") or {}).get("config") or {}
        name = str(user or self.spec_of(rec).user or config.get("User") or "0").partition(":")[0]
        if name.isdigit():
            return int(name)
        root = os.open(f"/proc/{obs['pid']}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            found = safepath.open_in_root(root, "/etc/passwd")
            try:
                with open(f"/proc/self/fd/{found}", "rb") as f:
                    lines = f.read(1 << 20).decode(errors="replace").splitlines()
            finally:
                os.close(found)
        except (InvalidSpec, OSError):
            lines = []
        finally:
            os.close(root)
        for line in lines:
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise InvalidSpec(f"unable to find user {name}: no matching entries in passwd file")

    def exec_spawn(self, ref: str, argv, stdio, env=(), user=None, workdir=None, tty=False) -> int:
        """Start `argv` in the running container on the given stdio fds; return the helper's
        pid (reap it with os.waitpid). For interactive sessions: the CLI and the web terminal."""
        from runtime.container import execute

        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        sm.check("exec", rec["name"], obs["status"])
        return execute.spawn(
            self,
            rec,
            obs["pid"],
            list(argv),
            list(stdio),
            env=list(env),
            user=user,
            workdir=workdir,
            tty=tty,
        )

    def attach_socket(self, ref: str) -> str:
        """Path of the shim's attach socket."""
        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        if not obs["monitored"]:
            raise InvalidState(f"cannot attach to container {rec['name']}: it is {obs['status']}")
        return str(self.store.paths(cid).attach_socket)

    def resize(self, ref: str, cols: int, rows: int) -> None:
        """Set the window size of a TTY container's terminal (its program gets SIGWINCH)."""
        import socket
        import struct

        from runtime.container.fsutil import socket_path

        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        if not rec["spec"].get("tty"):
            raise InvalidState(f"cannot resize container {rec['name']}: it has no TTY")
        if not obs["monitored"]:
            raise InvalidState(f"cannot resize container {rec['name']}: it is {obs['status']}")
        if not (0 < int(cols) < 65536 and 0 < int(rows) < 65536):
            raise InvalidSpec(f"invalid window size {cols}x{rows}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with socket_path(self.store.paths(cid).winsize_socket) as address:
                sock.sendto(struct.pack("HH", int(rows), int(cols)), address)
        except OSError as err:
            raise InvalidState(f"cannot resize container {rec['name']}: {err}") from None
        finally:
            sock.close()
