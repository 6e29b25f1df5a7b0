"""Build the `busybox` base image from Debian's busybox-static (/bin/busybox), offline.

The archive is deterministic (fixed times taken from the binary, sorted config), so building
twice yields the same image id and the second build changes nothing.
"""

import argparse
import datetime
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

from runtime.errors import BerthError, ImageError
from runtime.images import formats

BUSYBOX = "/bin/busybox"
REF = "busybox:latest"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DIRS = {
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
    "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
    "usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755,
    "var/www": 0o755,
}  # fmt: skip
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


def applets(busybox: str = BUSYBOX) -> list[str]:
    """Install paths of the applets ("bin/sh", "usr/bin/env", ...) that the binary offers."""
    try:
        out = subprocess.run(
            [busybox, "--list-full"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise ImageError(
            f"cannot run {busybox} --list-full ({err}): install busybox-static"
        ) from None
    return sorted(
        line.strip() for line in out.splitlines() if line.strip() and not line.endswith("/")
    )


def _info(name: str, mtime: int, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "root", "root"
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def build_rootfs_tar(path, busybox: str = BUSYBOX) -> None:
    """Write the busybox root filesystem as a tar file at `path`."""
    mtime = int(os.stat(busybox).st_mtime)
    names = applets(busybox)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode in DIRS.items():
            tar.addfile(_info(name, mtime, type=tarfile.DIRTYPE, mode=mode))
        with open(busybox, "rb") as binary:
            size = os.fstat(binary.fileno()).st_size
            tar.addfile(_info("bin/busybox", mtime, size=size, mode=0o755), binary)
        # Every applet is a hard link to bin/busybox: in /bin (as in Docker's busybox image)
        # and at its usual home (/usr/bin/env, /sbin/ip, ...). Hard links, not symlinks: one
        # inode for all, and creating them is ten times cheaper when the layer is unpacked.
        seen = {"bin/busybox"}
        for name in names:
            for path in ("bin/" + os.path.basename(name), name):
                if path not in seen and os.path.dirname(path) in DIRS:
                    link = _info(
                        path, mtime, type=tarfile.LNKTYPE, linkname="bin/busybox", mode=0o755
                    )
                    tar.addfile(link)
                    seen.add(path)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            data = text.encode()
            tar.addfile(_info(name, mtime, size=len(data), mode=0o644), io.BytesIO(data))


def build_image_archive(path, busybox: str = BUSYBOX, ref: str = REF) -> None:
    """Write a `docker save` archive of the busybox image (one layer, Cmd ["sh"])."""
    mtime = int(os.stat(busybox).st_mtime)
    created = datetime.datetime.fromtimestamp(mtime, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as scratch:
        layer = os.path.join(scratch, "layer.tar")
        build_rootfs_tar(layer, busybox)
        digest = hashlib.sha256()
        with open(layer, "rb") as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
        diff_id = "sha256:" + digest.hexdigest()
        config = {
            "architecture": formats.host_arch(),
            "os": "linux",
            "created": created,
            "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": "berth: busybox-static /bin/busybox"}],
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        layer_name = diff_id.partition(":")[2] + "/layer.tar"
        manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [layer_name]}]
        with tarfile.open(path, "w") as tar:
            for name, data in (
                (config_name, config_bytes),
                ("manifest.json", json.dumps(manifest).encode()),
            ):
                tar.addfile(_info(name, mtime, size=len(data), mode=0o644), io.BytesIO(data))
            tar.add(layer, arcname=layer_name)


def build_image(store, busybox: str = BUSYBOX, ref: str = REF):
    """Build the busybox image into `store` (an ImageStore) and return it; idempotent."""
    store.layout.ensure()
    scratch = store.layout.scratch()
    try:
        archive = os.path.join(scratch, "busybox.tar")
        build_image_archive(archive, busybox, ref)
        return store.import_archive(archive, kind="docker")
    finally:
        store.layout.discard(scratch)


def main(argv=None) -> int:
    """Command line of scripts/build-busybox-image."""
    from runtime.config import RuntimeConfig
    from runtime.images.store import ImageStore

    parser = argparse.ArgumentParser(description="Build busybox:latest into the Berth image store.")
    parser.add_argument("--busybox", default=BUSYBOX, help="the static busybox binary")
    parser.add_argument("--ref", default=REF, help="reference to tag the image with")
    args = parser.parse_args(argv)
    try:
        image = build_image(ImageStore(RuntimeConfig.from_env()), args.busybox, args.ref)
    except BerthError as err:
        print(f"build-busybox-image: {err}", file=sys.stderr)
        return 1
    print(f"{args.ref} {image.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
