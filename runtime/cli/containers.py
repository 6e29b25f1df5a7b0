"""Container verbs in Docker's words: run, create, start, stop, restart, kill, pause, unpause,
rm, ps, logs, exec, attach, inspect, stats, top, wait. Thin wrappers over runtime.api."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from runtime.cli import specflags
from runtime.cli.ps import table as _table
from runtime.errors import BerthError, InvalidSpec

# socket, threading and runtime.cli.terminal are imported by the verbs that attach: `ps`,
# `rm` and the other short verbs start faster without them.


def _rt(args):
    from runtime.api import Runtime

    return Runtime(args.config)


def register(subparsers) -> None:
    """Add the container commands."""
    for verb, helptext in (
        ("run", "create and start a container"),
        ("create", "create a container"),
    ):
        p = subparsers.add_parser(verb, help=helptext, add_help=False)
        p.add_argument("--help", action="help")
        if verb == "run":
            p.add_argument("-d", "--detach", action="store_true")
            p.add_argument("--rm", action="store_true")
        specflags.add_spec_flags(p)
        p.set_defaults(func=_run if verb == "run" else _create)
    p = subparsers.add_parser("start", help="start containers")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("--checkpoint", metavar="NAME", help="restore from this checkpoint")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=_start)
    for verb in ("stop", "restart"):
        p = subparsers.add_parser(verb, help=f"{verb} containers")
        p.add_argument("-t", "--time", type=int)
        p.add_argument("containers", nargs="+")
        p.set_defaults(func=_stop if verb == "stop" else _restart)
    p = subparsers.add_parser("kill", help="send a signal (default KILL)")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=_kill)
    for verb in ("pause", "unpause", "wait", "inspect", "top"):
        p = subparsers.add_parser(verb, help=f"{verb} containers")
        p.add_argument("containers", nargs="+" if verb != "top" else 1)
        p.set_defaults(func=globals()[f"_{verb}"])
    p = subparsers.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true", help="refused: named volumes are kept")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=_rm)
    p = subparsers.add_parser("rename", help="rename a container")
    p.add_argument("container")
    p.add_argument("new_name")
    p.set_defaults(func=_rename)
    p = subparsers.add_parser("logs", help="show a container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail")
    p.add_argument("--since")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("container")
    p.set_defaults(func=_logs)
    p = subparsers.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("container")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(func=_exec)
    p = subparsers.add_parser("attach", help="attach to a container's TTY (detach: ctrl-p ctrl-q)")
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("container")
    p.set_defaults(func=_attach)
    p = subparsers.add_parser("stats", help="resource usage")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("containers", nargs="*")
    p.set_defaults(func=_stats)


# -- run / create / start ----------------------------------------------------------------
def _create(args) -> int:
    st = _rt(args).create(specflags.spec_from_args(args))
    print(st["id"])
    return 0


def _run(args) -> int:
    spec = specflags.spec_from_args(args)
    rt = _rt(args)
    if args.detach:
        # With --rm the shim's post-exit hook deletes the container once it exits.
        st = rt.run(spec, auto_remove=args.rm)
        print(st["id"])
        return 0
    st = rt.create(spec)
    try:
        return _attached(rt, st["id"], args.tty, args.interactive, start=True)
    finally:
        if args.rm:
            rt.delete(st["id"], force=True)


def _connect(rt, ref):
    import socket
    from pathlib import Path

    from runtime.container.fsutil import socket_path

    sock = socket.socket(socket.AF_UNIX)
    with socket_path(Path(rt.attach_socket(ref))) as address:
        sock.connect(address)
    return sock


def _attached(rt, cid: str, tty: bool, interactive: bool, start: bool) -> int:
    """Run in the foreground: TTY through the attach socket, else stdout/stderr from the log."""
    import threading

    from runtime.cli import terminal

    if tty or interactive:
        sock = _connect(rt, cid)  # connected before start: no early output is missed
        if start:
            rt.start(cid)
        if tty:
            resize = lambda cols, rows: rt.resize(cid, cols, rows)  # noqa: E731
            with terminal.raw_terminal(True), terminal.follow_window(resize):
                how = terminal.relay(sock.fileno(), sock.fileno(), send_input=interactive)
            if how == "detached":
                print("\r\nread escape sequence", file=sys.stderr)
                return 0
            return rt.wait(cid)
        threading.Thread(target=_pump_stdin, args=(sock,), daemon=True).start()
    elif start:
        rt.start(cid)
    for stream, _, data in rt.logs(cid, follow=True):
        out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        out.write(data)
        out.flush()
    return rt.wait(cid)


def _pump_stdin(sock) -> None:
    import socket

    while data := os.read(0, 4096):
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)


def _each(args, action) -> int:
    code = 0
    for ref in args.containers:
        try:
            action(ref)
            print(ref)
        except BerthError as err:
            print(f"berth: {err}", file=sys.stderr)
            code = err.exit_code
    return code


def _start(args) -> int:
    rt = _rt(args)
    if args.checkpoint:
        if len(args.containers) != 1:
            raise InvalidSpec("you cannot restore multiple containers from one checkpoint")
        return _each(args, lambda ref: rt.start(ref, checkpoint=args.checkpoint))
    if args.attach:
        if len(args.containers) != 1:
            raise InvalidSpec("you cannot start and attach multiple containers at once")
        st = rt.state(args.containers[0])
        spec = st["spec"]
        return _attached(rt, st["id"], spec["tty"], spec["stdin_open"], start=True)
    return _each(args, rt.start)


def _stop(args) -> int:
    rt = _rt(args)
    return _each(args, lambda ref: rt.stop(ref, args.time))


def _restart(args) -> int:
    rt = _rt(args)
    return _each(args, lambda ref: rt.restart(ref, args.time))


def _kill(args) -> int:
    rt = _rt(args)
    return _each(args, lambda ref: rt.kill(ref, args.signal))


def _pause(args) -> int:
    return _each(args, _rt(args).pause)


def _unpause(args) -> int:
    return _each(args, _rt(args).unpause)


def _rm(args) -> int:
    if args.volumes:
        raise InvalidSpec("-v is not supported: named volumes are kept; remove them explicitly")
    rt = _rt(args)
    return _each(args, lambda ref: rt.delete(ref, force=args.force))


def _rename(args) -> int:
    _rt(args).rename(args.container, args.new_name)
    return 0


def _wait(args) -> int:
    rt = _rt(args)
    for ref in args.containers:
        print(rt.wait(ref))
    return 0


def _inspect(args) -> int:
    rt = _rt(args)
    print(json.dumps([rt.state(ref) for ref in args.containers], indent=2))
    return 0


def _top(args) -> int:
    table = _rt(args).top(args.containers[0])
    _table(table["titles"], table["processes"])
    return 0


def _logs(args) -> int:
    rt = _rt(args)
    for stream, ts, data in rt.logs(
        args.container, follow=args.follow, tail=args.tail, since=args.since
    ):
        out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        out.write((ts + " ").encode() + data if args.timestamps else data)
        out.flush()
    return 0


def _mb(n) -> str:
    return "--" if n is None else f"{n / 1048576:.1f}MiB"


def _stats(args) -> int:
    rt = _rt(args)
    refs = args.containers or [s["id"] for s in rt.list() if s["status"] in ("running", "paused")]
    prev: dict = {}
    while True:
        rows = []
        for ref in refs:
            st, s = rt.state(ref), rt.stats(ref)
            last = prev.get(st["id"])
            cpu = ""
            if last:
                cpu = f"{100 * (s['cpu_usage_ns'] - last['cpu_usage_ns']) / ((s['read_at'] - last['read_at']) * 1e9):.2f}%"
            prev[st["id"]] = s
            rows.append(
                [
                    st["id"][:12],
                    st["name"],
                    cpu or "--",
                    f"{_mb(s['memory_usage'])} / {_mb(s['memory_limit'])}",
                    f"{s['pids_current']}",
                ]
            )
        _table(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "PIDS"], rows)
        if args.no_stream:
            return 0
        time.sleep(1)


# -- exec / attach -----------------------------------------------------------------------
def _exec(args) -> int:
    from runtime.cli import terminal
    from runtime.container import execute
    from runtime.container import status as sm

    if not args.cmd:
        raise InvalidSpec("exec needs a command")
    rt = _rt(args)
    cid = rt.store.resolve(args.container)
    rec, obs = rt._observe(cid)
    sm.check("exec", rec["name"], obs["status"])
    if args.tty:
        master, slave = execute.open_pty_in(obs["pid"])
        terminal.copy_window_size(master)
        helper = rt.exec_spawn(
            cid, args.cmd, [slave] * 3, env=args.env, user=args.user, workdir=args.workdir, tty=True
        )
        os.close(slave)
        if args.detach:
            return 0
        with terminal.raw_terminal(True):
            terminal.relay(master, master, send_input=args.interactive, detach_keys=False)
    else:
        stdin = 0 if args.interactive else os.open("/dev/null", os.O_RDONLY)
        helper = rt.exec_spawn(
            cid, args.cmd, [stdin, 1, 2], env=args.env, user=args.user, workdir=args.workdir
        )
        if args.detach:
            return 0
    _, status = os.waitpid(helper, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _attach(args) -> int:
    from runtime.cli import terminal

    rt = _rt(args)
    st = rt.state(args.container)
    sock = _connect(rt, st["id"])
    tty = st["spec"]["tty"]

    def resize(cols: int, rows: int) -> None:
        """Pass our window size on (TTY containers only)."""
        if tty:
            rt.resize(st["id"], cols, rows)

    with terminal.raw_terminal(tty), terminal.follow_window(resize):
        how = terminal.relay(
            sock.fileno(), sock.fileno(), send_input=not args.no_stdin, detach_keys=True
        )
    if how == "detached":
        print("\r\nread escape sequence", file=sys.stderr)
        return 0
    return rt.wait(st["id"])
