"""Portable checkpoint archives (Podman's --export/--import idea), verified by SHA-256.

The archive is a plain tar: manifest.json first (format, architecture, container name, spec,
image reference and id, the checkpoint's meta and the SHA-256 of every other member), then
images/* (CRIU's files) and upper.tar (the container's upper layer, made by GNU tar so the
overlay's whiteouts and opaque-directory xattrs survive). Import refuses any member that
is missing, unexpected, not a plain file, or whose digest differs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import subprocess
import tarfile
from pathlib import Path

from runtime.errors import InvalidSpec

FORMAT = 1
CHUNK = 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _scratch(rt) -> Path:
    base = Path(rt.config.root) / "tmp"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    where = base / f"checkpoint-{secrets.token_hex(6)}"
    where.mkdir(mode=0o700)
    return where


def export(rt, rec: dict, checkpoint: Path, target) -> None:
    """Write checkpoint + upper layer + spec of `rec` to the archive file `target`."""
    target = Path(target)
    if (checkpoint / "images" / "parent").is_symlink():
        # Its pages are partly in pre-dumps (precopy.py) that an archive does not carry.
        raise InvalidSpec(f"checkpoint {checkpoint.name} is a pre-copy one; it cannot be exported")
    paths = rt.store.paths(rec["id"])
    scratch = _scratch(rt)
    try:
        upper = scratch / "upper.tar"
        tar_upper(paths.upper, upper)
        members = {"upper.tar": upper}
        for item in sorted((checkpoint / "images").iterdir()):
            if item.is_file():
                members[f"images/{item.name}"] = item
        meta = json.loads((checkpoint / "meta.json").read_text())
        manifest = {
            "format": FORMAT,
            "arch": platform.machine(),
            "name": rec["name"],
            "image": rec["image"],
            "image_id": rec["image_id"],
            "spec": rec["spec"],
            "meta": meta,
            "digests": {name: _sha256(path) for name, path in members.items()},
        }
        partial = target.with_name(target.name + f".{os.getpid()}.partial")
        with tarfile.open(partial, "w") as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for name, path in members.items():
                tar.add(path, arcname=name, recursive=False)
        os.replace(partial, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(NameError, OSError):
            partial.unlink(missing_ok=True)


def tar_upper(upper: Path, into: Path) -> None:
    """The upper layer as a tar with owners, whiteouts and trusted.* xattrs."""
    done = subprocess.run(
        [
            "tar",
            "--xattrs",
            "--xattrs-include=trusted.*",
            "--numeric-owner",
            "-cpf",
            str(into),
            "-C",
            str(upper),
            ".",
        ],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise InvalidSpec(f"cannot archive the upper layer: {done.stderr.decode()[-300:]}")


def unpack_upper(where: Path, upper: Path) -> None:
    """Unpack the verified upper.tar into the new container's (empty) upper layer."""
    done = subprocess.run(
        [
            "tar",
            "--xattrs",
            "--xattrs-include=trusted.*",
            "--numeric-owner",
            "-xpf",
            str(where / "upper.tar"),
            "-C",
            str(upper),
        ],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise InvalidSpec(f"cannot unpack the upper layer: {done.stderr.decode()[-300:]}")


def _refuse(why: str) -> InvalidSpec:
    return InvalidSpec(f"refusing the checkpoint archive: {why}")


def _read_manifest(tar: tarfile.TarFile) -> tuple[dict, tarfile.TarInfo]:
    first = tar.next()
    if first is None or first.name != "manifest.json" or not first.isfile():
        raise _refuse("it does not start with manifest.json")
    try:
        manifest = json.loads(tar.extractfile(first).read(16 << 20))
    except ValueError:
        raise _refuse("manifest.json is not JSON") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("digests"), dict):
        raise _refuse(f"unknown format {manifest.get('format')!r}")
    if manifest.get("arch") != platform.machine():
        raise _refuse(f"it was made on {manifest.get('arch')}, this host is {platform.machine()}")
    return manifest, first


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return name == "upper.tar" or (
        len(parts) == 2 and parts[0] == "images" and parts[1] not in ("", ".", "..")
    )


@contextlib.contextmanager
def unpacked(rt, archive):
    """Yield (manifest, directory) of a verified archive; the directory is removed after."""
    where = _scratch(rt)
    try:
        (where / "images").mkdir()
        try:
            tar = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the with below)
        except (OSError, tarfile.TarError) as err:
            raise _refuse(f"cannot read {archive}: {err}") from None
        with tar:
            manifest, first = _read_manifest(tar)
            wanted = dict(manifest["digests"])
            for member in tar:
                if member is first:
                    continue
                if not member.isfile() or not _safe_name(member.name):
                    raise _refuse(f"unexpected member {member.name!r}")
                if member.name not in wanted:
                    raise _refuse(f"{member.name} is not listed in its manifest")
                digest = hashlib.sha256()
                with tar.extractfile(member) as src, open(where / member.name, "wb") as out:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != wanted.pop(member.name):
                    raise _refuse(f"{member.name} does not match its SHA-256 (tampered?)")
            if wanted:
                raise _refuse(f"missing {', '.join(sorted(wanted))}")
        (where / "meta.json").write_text(json.dumps(manifest["meta"]))
        yield manifest, where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def check_image(rt, manifest: dict, rec: dict) -> dict:
    """The new record, if this host's image is the one the checkpoint was made on."""
    if rec["image_id"] != manifest["image_id"]:
        raise InvalidSpec(
            f"image {manifest['image']} on this host ({rec['image_id'][:19]}) is not the one the "
            f"checkpoint was made with ({str(manifest['image_id'])[:19]})"
        )
    return rec
