"""Image verbs in Docker's words: images, image ls|inspect|rm|tag|import|load|save, import,
load, save, tag, rmi. Thin wrappers over runtime.images.ImageStore."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile

from runtime.config import RuntimeConfig
from runtime.errors import BerthError


def register(subparsers) -> None:
    """Add the image commands (top-level and under `image`) to an argparse subparsers object."""
    _add_verbs(subparsers, top_level=True)
    image = subparsers.add_parser("image", help="manage images")
    verbs = image.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    _add_verbs(verbs, top_level=False)


def _add_verbs(subparsers, top_level: bool) -> None:
    ls = subparsers.add_parser("images" if top_level else "ls", help="list images",
                               aliases=[] if top_level else ["list"])  # fmt: skip
    ls.add_argument("-q", "--quiet", action="store_true", help="only show image ids")
    ls.add_argument("--no-trunc", action="store_true", help="show full image ids")
    ls.add_argument("-a", "--all", action="store_true", help="accepted for Docker compatibility")
    ls.set_defaults(func=_ls)

    if not top_level:
        inspect = subparsers.add_parser("inspect", help="show images as JSON")
        inspect.add_argument("refs", nargs="+", metavar="IMAGE")
        inspect.set_defaults(func=_inspect)

    rm = subparsers.add_parser("rmi" if top_level else "rm", help="remove images")
    rm.add_argument(
        "-f", "--force", action="store_true", help="remove even if in use or multiply tagged"
    )
    rm.add_argument("refs", nargs="+", metavar="IMAGE")
    rm.set_defaults(func=_rm)

    tag = subparsers.add_parser("tag", help="give an image another name")
    tag.add_argument("source", metavar="SOURCE_IMAGE")
    tag.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    tag.set_defaults(func=_tag)

    imp = subparsers.add_parser("import", help="create an image from a root filesystem tarball")
    imp.add_argument("-c", "--change", action="append", default=[], help="CMD, ENTRYPOINT, ENV, "
                     "WORKDIR, USER, EXPOSE or LABEL instruction for the image config")  # fmt: skip
    imp.add_argument("file", metavar="FILE|-")
    imp.add_argument("ref", metavar="REPOSITORY[:TAG]")
    imp.set_defaults(func=_import)

    load = subparsers.add_parser("load", help="load images from a docker-save or OCI tarball")
    load.add_argument("-i", "--input", default="-", help="read from this file instead of stdin")
    load.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    load.set_defaults(func=_load)

    if not top_level:
        prune = subparsers.add_parser("prune", help="remove untagged images no container uses")
        prune.add_argument("-f", "--force", action="store_true", help="accepted: never prompts")
        prune.set_defaults(func=_prune)

    save = subparsers.add_parser("save", help="write images to a docker-save or OCI tarball")
    save.add_argument("-o", "--output", required=True, help="the tarball to write")
    save.add_argument(
        "--format",
        choices=("docker", "oci"),
        default="docker",
        help="docker: `docker save` layout (default); oci: OCI image layout",
    )
    save.add_argument("refs", nargs="+", metavar="IMAGE")
    save.set_defaults(func=_save)


def _store(args):
    from runtime.images import ImageStore

    return ImageStore(getattr(args, "config", None) or RuntimeConfig.from_env())


def _age(created: str) -> str:
    """Docker's "2 hours ago" style for the CREATED column."""
    try:
        when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "N/A"
    seconds = (datetime.datetime.now(datetime.UTC) - when).total_seconds()
    for unit, size in (("years", 31536000), ("months", 2592000), ("weeks", 604800),
                       ("days", 86400), ("hours", 3600), ("minutes", 60)):  # fmt: skip
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit} ago"
    return "Less than a minute ago" if seconds < 60 else "About a minute ago"


def _size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.3g}{unit}" if unit != "B" else f"{size}B"
        size /= 1000
    return f"{size}"


def _ls(args) -> int:
    images = _store(args).list()
    if args.quiet:
        for image in images:
            print(image.id if args.no_trunc else image.short_id)
        return 0
    rows = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    for image in images:
        shown = image.id if args.no_trunc else image.short_id
        for tag in image.repo_tags or ["<none>:<none>"]:
            repo, _, name = tag.rpartition(":")
            rows.append((repo, name, shown, _age(image.created), _size(image.size)))
    widths = [max(len(row[col]) for row in rows) + 3 for col in range(4)]
    for row in rows:
        print(
            "".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)) + row[4]
        )
    return 0


def _inspect(args) -> int:
    store, found, failed = _store(args), [], False
    for ref in args.refs:
        try:
            found.append(store.inspect(ref))
        except BerthError as err:
            print(f"Error: {err}", file=sys.stderr)
            failed = True
    print(json.dumps(found, indent=4))
    return 1 if failed else 0


def _containers(args) -> list[dict]:
    """State of every container (empty where the runtime API is not installed)."""
    try:
        from runtime.api import Runtime
    except ImportError:
        return []
    return Runtime(getattr(args, "config", None) or RuntimeConfig.from_env()).list()


def _users(args, image_id: str) -> list[str]:
    """Ids of containers created from the image."""
    return [c["id"] for c in _containers(args) if c.get("image_id") == image_id]


def _rm(args) -> int:
    store, failed = _store(args), False
    for ref in args.refs:
        try:
            users = _users(args, store.resolve(ref).id)
            for line in store.remove(ref, force=args.force, users=users):
                print(line)
        except BerthError as err:
            print(f"Error: {err}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _prune(args) -> int:
    in_use = {c.get("image_id") for c in _containers(args)}
    for line in _store(args).prune(in_use):
        print(line)
    return 0


def _tag(args) -> int:
    _store(args).tag(args.source, args.target)
    return 0


def _with_input(path: str, run):
    """Call run(path); "-" means stdin, copied to a temporary file first (imports seek)."""
    if path != "-":
        return run(path)
    with tempfile.NamedTemporaryFile(prefix="berth-stdin-") as tmp:
        shutil.copyfileobj(sys.stdin.buffer, tmp, 1 << 20)
        tmp.flush()
        return run(tmp.name)


def _import(args) -> int:
    store = _store(args)
    image = _with_input(
        args.file, lambda path: store.import_archive(path, args.ref, args.change, "rootfs")
    )
    print(image.id)
    return 0


def _load(args) -> int:
    store = _store(args)
    if args.input == "-" and sys.stdin.isatty():
        print("Error: no input: use -i FILE or pipe a tarball to stdin", file=sys.stderr)
        return 1
    images = _with_input(args.input, store.load_archive)
    if not args.quiet:
        for image in images:
            for tag in image.repo_tags or [image.id]:
                print(f"Loaded image{'' if image.repo_tags else ' ID'}: {tag}")
    return 0


def _save(args) -> int:
    target = os.path.abspath(args.output)
    store = _store(args)
    if getattr(args, "format", "docker") == "oci":
        store.export_oci_archive(args.refs, target)
    else:
        store.export_docker_archive(args.refs, target)
    return 0
