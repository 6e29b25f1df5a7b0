"""`checkpoint create|ls|rm` and `restore --import` (Docker's and Podman's words for CRIU)."""

from __future__ import annotations

from runtime.cli.containers import _rt


def register(subparsers) -> None:
    """Add the checkpoint and restore commands."""
    p = subparsers.add_parser("checkpoint", help="manage checkpoints of running containers")
    verbs = p.add_subparsers(dest="checkpoint_command", metavar="COMMAND", required=True)
    c = verbs.add_parser("create", help="checkpoint a running container")
    c.add_argument("--leave-running", action="store_true", help="keep it running afterwards")
    c.add_argument("--tcp-established", action="store_true", help="keep open TCP connections")
    c.add_argument("--export", metavar="FILE", help="write a portable archive (no local copy)")
    c.add_argument("container")
    c.add_argument("name")
    c.set_defaults(func=_create)
    ls = verbs.add_parser("ls", help="list a container's checkpoints")
    ls.add_argument("container")
    ls.set_defaults(func=_ls)
    rm = verbs.add_parser("rm", help="remove a checkpoint")
    rm.add_argument("container")
    rm.add_argument("name")
    rm.set_defaults(func=_rm)
    r = subparsers.add_parser("restore", help="create and restore a container from an archive")
    r.add_argument("--import", dest="import_file", metavar="FILE", required=True)
    r.add_argument("--name", help="name of the new container (default: the original's)")
    r.set_defaults(func=_restore)


def _create(args) -> int:
    _rt(args).checkpoint(
        args.container,
        args.name,
        leave_running=args.leave_running,
        export=args.export,
        tcp_established=args.tcp_established,
    )
    print(args.name)
    return 0


def _ls(args) -> int:
    print("CHECKPOINT NAME")
    for item in _rt(args).checkpoints(args.container):
        print(item["name"])
    return 0


def _rm(args) -> int:
    _rt(args).checkpoint_remove(args.container, args.name)
    return 0


def _restore(args) -> int:
    print(_rt(args).restore(args.import_file, name=args.name)["id"])
    return 0
