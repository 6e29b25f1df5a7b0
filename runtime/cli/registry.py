"""Registry and build verbs in Docker's words: search, pull, push, login, logout, build,
commit, history, builder prune. Thin wrappers over runtime.registry and runtime.build."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import sys
import tempfile

from runtime.config import RuntimeConfig


def register(subparsers) -> None:
    """Add the registry and build commands to an argparse subparsers object.

    Registered after runtime.cli.images, `history` is also added under its `image` command.
    """
    search = subparsers.add_parser("search", help="search a registry's catalog or Docker Hub")
    search.add_argument("term", help="text the repository name contains")
    search.add_argument(
        "--registry", help="host[:port] whose catalog to search (default Docker Hub)"
    )
    search.add_argument("--limit", type=int, default=25, help="at most this many results")
    search.add_argument("--tags", action="store_true", help="list each repository's tags too")
    search.set_defaults(func=_search)

    pull = subparsers.add_parser("pull", help="pull an image from a registry")
    pull.add_argument("ref", metavar="NAME[:TAG|@DIGEST]")
    pull.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    pull.add_argument("--platform", help="os/arch to pick from an index (default this host's)")
    pull.set_defaults(func=_pull)

    push = subparsers.add_parser("push", help="push an image to a registry")
    push.add_argument("ref", metavar="NAME[:TAG]")
    push.add_argument("target", nargs="?", metavar="TARGET", help="push under this name instead")
    push.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    push.add_argument("--chunk-size", type=int, help="upload blobs in chunks of this many bytes")
    push.set_defaults(func=_push)

    login = subparsers.add_parser(
        "login", help="log in to a registry (saved under the state root, mode 600)"
    )
    login.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    login.add_argument("-u", "--username")
    login.add_argument("-p", "--password", help="prefer --password-stdin")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("--insecure-registry", action="store_true",
                       help="mark SERVER insecure: TLS unverified, plain HTTP allowed")  # fmt: skip
    login.set_defaults(func=_login)

    logout = subparsers.add_parser("logout", help="forget a registry login")
    logout.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    logout.set_defaults(func=_logout)

    build = subparsers.add_parser("build", help="build an image from a Dockerfile")
    build.add_argument(
        "context", metavar="PATH|-", help="context directory or tar ('-' reads a tar from stdin)"
    )
    build.add_argument("-t", "--tag", help="name the image NAME[:TAG]")
    build.add_argument(
        "-f",
        "--file",
        help="Dockerfile (default: PATH/Dockerfile; a relative -f is found from the current "
        "directory first, as Docker does, then in the context)",
    )
    build.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    build.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    build.add_argument(
        "--network", default="none", help="network for RUN: none (default), bridge or host"
    )
    build.add_argument("-m", "--memory", default="1g", help="memory limit of each RUN container")
    build.add_argument(
        "--pids-limit", type=int, default=1024, help="pids limit of each RUN container"
    )
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    build.set_defaults(func=_build)

    commit = subparsers.add_parser("commit", help="create an image from a container's changes")
    commit.add_argument("container", metavar="CONTAINER")
    commit.add_argument("ref", nargs="?", metavar="REPOSITORY[:TAG]")
    commit.add_argument(
        "-c", "--change", action="append", default=[], help="Dockerfile instruction"
    )
    commit.add_argument("-m", "--message", default="")
    commit.add_argument("-a", "--author", default="")
    commit.add_argument("-p", "--pause", default="true", choices=["true", "false"],
                        help="pause the container while committing")  # fmt: skip
    commit.set_defaults(func=_commit)

    _add_history(subparsers)
    image = subparsers.choices.get("image")
    if image is not None:
        for action in image._actions:
            if isinstance(action, argparse._SubParsersAction) and "history" not in action.choices:
                _add_history(action)

    builder = subparsers.add_parser("builder", help="manage the build cache")
    verbs = builder.add_subparsers(dest="builder_command", metavar="COMMAND", required=True)
    prune = verbs.add_parser("prune", help="remove build cache entries whose layers are gone")
    prune.set_defaults(func=_builder_prune)


def _add_history(subparsers) -> None:
    history = subparsers.add_parser("history", help="show the history of an image")
    history.add_argument("ref", metavar="IMAGE")
    history.add_argument("--no-trunc", action="store_true")
    history.add_argument("-q", "--quiet", action="store_true", help="only show image ids")
    history.add_argument("--format", choices=["table", "json"], default="table")
    history.set_defaults(func=_history)


def _config(args) -> RuntimeConfig:
    return getattr(args, "config", None) or RuntimeConfig.from_env()


def _store(args):
    from runtime.images import ImageStore

    return ImageStore(_config(args))


def _runtime(args):
    from runtime.api import Runtime

    return Runtime(_config(args))


def _registry_options(args, ref_text: str) -> dict:
    """Saved credentials and the insecure switch for the registry a reference names."""
    from runtime.registry import CredentialStore, parse

    creds = CredentialStore(_config(args))
    host = parse(ref_text).registry
    return {"credentials": creds.get(host), "insecure": creds.is_insecure(host)}


class _Progress:
    """Prints one line per layer status change, as `docker pull` does without a terminal."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.last = {}

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        ident, status = event.get("id", ""), event.get("status", "")
        if self.last.get(ident) == status:
            return
        self.last[ident] = status
        short = ident.split(":", 1)[1][:12] if ident.startswith("sha256:") else ident
        print(f"{short}: {status}", flush=True)


def _search(args) -> int:
    from runtime.registry import RegistryClient
    from runtime.registry.search import search, search_registry

    if args.registry:
        opts = _registry_options(args, f"{args.registry}/x")
        user, password = opts["credentials"] or (None, None)
        client = RegistryClient(
            args.registry, username=user, password=password, insecure=opts["insecure"]
        )
        results = search_registry(client, args.term, args.limit, with_tags=args.tags)
    else:
        results = search(args.term, limit=args.limit)
    print(f"{'NAME':<50} {'STARS':>5} {'OFFICIAL':<8} DESCRIPTION")
    for item in results:
        official = "[OK]" if item.get("official") else ""
        print(
            f"{item['name']:<50} {item.get('stars', 0):>5} {official:<8} {item.get('description', '')[:60]}"
        )
        if item.get("tags"):
            print(f"    tags: {', '.join(item['tags'])}")
    return 0


def _pull(args) -> int:
    from runtime.registry import pull

    platform = None
    if args.platform:
        os_name, _, arch = args.platform.partition("/")
        platform = (os_name, arch)
    result = pull(
        _store(args), args.ref, progress=_Progress(args.quiet), platform=platform,
        **_registry_options(args, args.ref),
    )  # fmt: skip
    if args.quiet:
        print(result.image.id)
        return 0
    print(f"Digest: {result.digest}")
    what = "Downloaded newer image" if result.downloaded else "Image is up to date"
    print(f"Status: {what} for {result.reference}")
    print(result.image.id)
    return 0


def _push(args) -> int:
    from runtime.registry import push

    target = args.target or args.ref
    result = push(
        _store(args), args.ref, args.target, progress=_Progress(args.quiet),
        chunk_size=args.chunk_size, **_registry_options(args, target),
    )  # fmt: skip
    if args.quiet:
        print(result.digest)
    else:
        print(f"{result.reference.tag}: digest: {result.digest}")
    return 0


def _login(args) -> int:
    from runtime.registry import CredentialStore, login

    user = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password is not None:
        print(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
            file=sys.stderr,
        )
        password = args.password
    else:
        password = getpass.getpass("Password: ")
    config = _config(args)
    if args.insecure_registry:
        CredentialStore(config).set_insecure(args.server)
    login(config, args.server, user, password)
    print("Login Succeeded")
    return 0


def _logout(args) -> int:
    from runtime.registry import CredentialStore

    if CredentialStore(_config(args)).remove(args.server):
        print(f"Removing login credentials for {args.server}")
    else:
        print(f"Not logged in to {args.server}")
    return 0


def _build_args(items) -> dict:
    from runtime.errors import InvalidSpec

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidSpec(f"invalid --build-arg {item!r} (use KEY=VALUE)")
        if not eq:
            value = os.environ.get(key, "")
        out[key] = value
    return out


def _dockerfile(given: str | None) -> str:
    """The Dockerfile to build: the context's own unless -f named one."""
    if given is None:
        # Never the current directory's: `build PATH` reads PATH/Dockerfile.
        return "Dockerfile"
    if os.path.isfile(given) and not os.path.isabs(given):
        # Like Docker, -f is relative to the current directory when the file is there.
        return os.path.abspath(given)
    return given


def _build(args) -> int:
    from runtime.build import Builder

    def log(text: str) -> None:
        if not args.quiet:
            sys.stdout.write(text)
            sys.stdout.flush()

    builder = Builder(_runtime(args))
    dockerfile = _dockerfile(args.file)
    options = {
        "build_args": _build_args(args.build_arg),
        "log": log,
        "no_cache": args.no_cache,
        "network": args.network,
        "limits": {"memory": args.memory, "pids": args.pids_limit},
    }
    if args.context == "-":
        with tempfile.NamedTemporaryFile(prefix="berth-context-", suffix=".tar") as tmp:
            shutil.copyfileobj(sys.stdin.buffer, tmp, 1 << 20)
            tmp.flush()
            result = builder.build(tmp.name, args.file or "Dockerfile", args.tag, **options)
    else:
        result = builder.build(args.context, dockerfile, args.tag, **options)
    if args.quiet:
        print(result.image.id)
    return 0


def _commit(args) -> int:
    from runtime.build.commit import commit

    image = commit(
        _runtime(args), args.container, args.ref, changes=args.change, message=args.message,
        author=args.author, pause=args.pause == "true",
    )  # fmt: skip
    print(image.id)
    return 0


def _history(args) -> int:
    from runtime.build.commit import history

    rows = history(_store(args), args.ref)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if args.quiet:
        for row in rows:
            print(row["id"] or "<missing>")
        return 0
    print(f"{'IMAGE':<14} {'CREATED':<28} {'CREATED BY':<48} {'SIZE':>10} COMMENT")
    for row in rows:
        ident = row["id"] or "<missing>"
        if ident.startswith("sha256:") and not args.no_trunc:
            ident = ident[7:19]
        created_by = row["created_by"]
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        print(
            f"{ident:<14} {row['created'][:26]:<28} {created_by:<48} {_size(row['size']):>10} {row['comment']}"
        )
    return 0


def _size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    return str(size)


def _builder_prune(args) -> int:
    from runtime.build.cache import BuildCache

    removed = BuildCache(_config(args)).prune(_store(args))
    print(f"Removed {removed} build cache entries")
    return 0
