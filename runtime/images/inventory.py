"""The package inventory of an image, read from its unpacked layers (no container is started).

Readers: dpkg (`var/lib/dpkg/status`, plus `var/lib/dpkg/status.d/*` of distroless images),
apk (`lib/apk/db/installed`) and rpm's sqlite database (`rpmdb.sqlite`, runtime/images/rpmdb.py).
An image with an older rpm database (Berkeley DB `Packages`, SUSE's `Packages.db`), or a
package database that cannot be read, is reported `unknown` with the reason: never as an
image without packages.
The distribution comes from `etc/os-release` and decides the OSV ecosystem ("Debian:12",
"Alpine:v3.19").

Layers are looked up top-down as overlayfs stacks them: a whiteout (a 0:0 character device)
hides a path, an opaque directory hides everything below it, symlinks are resolved inside the
image's own tree, never on the host.
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.images import rpmdb

OPAQUE_XATTR = "trusted.overlay.opaque"
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d"
APK_INSTALLED = "lib/apk/db/installed"
RPM_SQLITE = ("usr/lib/sysimage/rpm/rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite")
RPM_DATABASES = ("var/lib/rpm/Packages", "usr/lib/sysimage/rpm/Packages.db", "usr/lib/sysimage/rpm")
# OSV ecosystems of rpm distributions (os-release ID -> name; a ":<major>" is added where OSV
# names releases that way).
RPM_ECOSYSTEMS = {"almalinux": "AlmaLinux:", "rocky": "Rocky Linux:", "rhel": "Red Hat"}
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
MAX_DB_BYTES = 64 * 1024 * 1024  # a package database bigger than this is not one we trust
MAX_LINKS = 8

OK, UNKNOWN = "ok", "unknown"


@dataclass
class Package:
    """One installed package: binary name and version, and the source package it came from."""

    name: str
    version: str
    source: str = ""  # dpkg Source / apk origin; OSV advisories name source packages
    source_version: str = ""
    arch: str = ""
    kind: str = ""  # deb | apk | rpm


@dataclass
class Inventory:
    """What an image holds: status ok (packages read) or unknown (with the reason)."""

    status: str
    ecosystem: str = ""  # OSV ecosystem: "Debian:12", "Alpine:v3.19"
    distro: str = ""  # os-release PRETTY_NAME
    packages: list[Package] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict:
        """The JSON form the agent stores."""
        return asdict(self)


class _Layers:
    """Path lookups through a stack of unpacked layer directories (lowest first)."""

    def __init__(self, layer_dirs):
        self.top_down = [Path(p) for p in reversed(list(layer_dirs))]

    def _find_once(self, rel: str) -> Path | None:
        parts = [p for p in rel.split("/") if p]
        for layer in self.top_down:
            hidden_below = False
            for depth in range(1, len(parts) + 1):
                sub = layer.joinpath(*parts[:depth])
                try:
                    st = os.lstat(sub)
                except OSError:
                    break
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    return None  # a whiteout: deleted in this layer
                if depth == len(parts):
                    return sub
                if stat.S_ISLNK(st.st_mode):
                    break  # resolved by the caller through find()
                if stat.S_ISDIR(st.st_mode) and _opaque(sub):
                    hidden_below = True
            if hidden_below:
                return None
        return None

    def find(self, rel: str) -> Path | None:
        """The file or directory at `rel` in the merged view, symlinks resolved in the image."""
        parts = [p for p in rel.split("/") if p]
        resolved: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            found = self._find_once("/".join([*resolved, name]))
            if found is None:
                return None
            if found.is_symlink():
                hops += 1
                if hops > MAX_LINKS:
                    return None
                # The link's target is read as a path of the image, never of the host.
                target = os.readlink(found)
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            resolved.append(name)
        return self._find_once("/".join(resolved)) if resolved else None

    def listdir(self, rel: str) -> list[str]:
        """Names in the merged directory `rel` (whiteouts and opaque directories honoured)."""
        names: dict[str, bool] = {}
        for layer in self.top_down:
            path = layer / rel
            if not path.is_dir() or path.is_symlink():
                if path.exists() or path.is_symlink():
                    break
                continue
            for entry in os.scandir(path):
                if entry.name in names:
                    continue
                st = entry.stat(follow_symlinks=False)
                names[entry.name] = not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
            if _opaque(path):
                break
        return sorted(name for name, present in names.items() if present)


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _read(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"{path.name} is not a regular file")
    if path.stat().st_size > MAX_DB_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_DB_BYTES} bytes")
    return path.read_bytes().decode("utf-8", errors="strict")


def paragraphs(text: str):
    """Paragraphs of an RFC 822-style file (dpkg status): dicts of field -> value."""
    block: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if block:
                yield block
            block, last = {}, None
        elif line[0] in " \t":
            if last is None:
                raise ValueError("a continuation line before any field")
            block[last] += "\n" + line.strip()
        else:
            name, sep, value = line.partition(":")
            if not sep or not name:
                raise ValueError(f"malformed line {line[:60]!r}")
            last = name.strip()
            block[last] = value.strip()
    if block:
        yield block


def parse_dpkg_status(text: str) -> list[Package]:
    """Installed packages of a dpkg status file (Status ... installed)."""
    packages = []
    for para in paragraphs(text):
        if "Package" not in para or "Version" not in para:
            continue
        status = para.get("Status", "install ok installed").split()
        if status[-1:] != ["installed"]:
            continue
        source, _, rest = para.get("Source", "").partition(" ")
        source_version = rest.strip().strip("()") if rest else ""
        packages.append(
            Package(
                name=para["Package"],
                version=para["Version"],
                source=source or para["Package"],
                source_version=source_version or para["Version"],
                arch=para.get("Architecture", ""),
                kind="deb",
            )
        )
    return packages


def parse_apk_installed(text: str) -> list[Package]:
    """Packages of apk's installed database (P: name, V: version, A: arch, o: origin)."""
    packages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) >= 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:])
            elif line.strip():
                raise ValueError(f"malformed line {line[:60]!r}")
        if "P" in fields and "V" in fields:
            packages.append(
                Package(
                    name=fields["P"],
                    version=fields["V"],
                    source=fields.get("o") or fields["P"],
                    source_version=fields["V"],
                    arch=fields.get("A", ""),
                    kind="apk",
                )
            )
    return packages


def os_release(layers: _Layers) -> dict:
    """The os-release fields of the image (empty when it has none)."""
    for rel in OS_RELEASE:
        path = layers.find(rel)
        if path is not None and path.is_file():
            out = {}
            for line in _read(path).splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    out[key.strip()] = value.strip().strip("\"'")
            return out
    return {}


def ecosystem_of(release: dict, kind: str) -> str:
    """The OSV ecosystem name for a distribution: "Debian:12", "Alpine:v3.19", else ""."""
    distro = release.get("ID", "")
    version = release.get("VERSION_ID", "")
    if kind == "deb" and distro == "debian":
        return f"Debian:{version.split('.')[0]}" if version else "Debian"
    if kind == "apk" and distro == "alpine":
        parts = version.split(".")
        return f"Alpine:v{parts[0]}.{parts[1]}" if len(parts) >= 2 else "Alpine"
    if kind == "deb" and distro == "ubuntu":
        return f"Ubuntu:{version}" if version else "Ubuntu"
    if kind == "rpm" and distro in RPM_ECOSYSTEMS:
        name = RPM_ECOSYSTEMS[distro]
        return name + version.split(".")[0] if name.endswith(":") else name
    return {"deb": "Debian", "apk": "Alpine"}.get(kind, "")


def read_inventory(layer_dirs) -> Inventory:
    """The inventory of the image made of `layer_dirs` (lowest first)."""
    layers = _Layers(layer_dirs)
    try:
        release = os_release(layers)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        release = {}
        release_error = f"os-release unreadable: {err}"
    else:
        release_error = ""
    distro = release.get("PRETTY_NAME", "")
    try:
        dpkg = layers.find(DPKG_STATUS)
        status_d = layers.find(DPKG_STATUS_D)
        apk = layers.find(APK_INSTALLED)
        if dpkg is not None or (status_d is not None and status_d.is_dir()):
            packages = parse_dpkg_status(_read(dpkg)) if dpkg is not None else []
            if status_d is not None and status_d.is_dir():
                for name in layers.listdir(DPKG_STATUS_D):
                    found = layers.find(f"{DPKG_STATUS_D}/{name}")
                    if found is not None and found.is_file():
                        packages += parse_dpkg_status(_read(found))
            return Inventory(OK, ecosystem_of(release, "deb"), distro, packages, release_error)
        if apk is not None:
            packages = parse_apk_installed(_read(apk))
            return Inventory(OK, ecosystem_of(release, "apk"), distro, packages, release_error)
        for rel in RPM_SQLITE:
            found = layers.find(rel)
            if found is not None:
                if not found.is_file() or found.stat().st_size > MAX_DB_BYTES:
                    raise ValueError(f"{rel} is not a regular file of at most {MAX_DB_BYTES} bytes")
                packages = [Package(**p, kind="rpm") for p in rpmdb.read_sqlite(found)]
                return Inventory(OK, ecosystem_of(release, "rpm"), distro, packages, release_error)
        for rel in RPM_DATABASES:
            if layers.find(rel) is not None:
                return Inventory(
                    UNKNOWN,
                    "",
                    distro,
                    [],
                    f"an rpm database in a format without a reader here ({rel}; "
                    "rpm's sqlite rpmdb.sqlite is read)",
                )
    except (OSError, ValueError, UnicodeDecodeError) as err:
        return Inventory(UNKNOWN, "", distro, [], f"package database unreadable: {err}")
    return Inventory(UNKNOWN, "", distro, [], "no package database found (dpkg, apk, rpm)")
