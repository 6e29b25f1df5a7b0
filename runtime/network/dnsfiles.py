"""The container's /etc/hosts and /etc/resolv.conf, written into files the lifecycle mounts."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

PUBLIC_RESOLVERS = ["8.8.8.8", "8.8.4.4"]
HOSTS_HEADER = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def host_resolv(path: str = "/etc/resolv.conf") -> dict:
    """Nameservers, search domains and options of the host's resolv.conf."""
    conf = {"nameservers": [], "search": [], "options": []}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            conf["nameservers"].append(words[1])
        elif words[0] in ("search", "domain"):
            conf["search"] = words[1:]
        elif words[0] == "options":
            conf["options"] += words[1:]
    return conf


def resolv_conf(dns: list[str], dns_search: list[str], host: dict | None = None) -> str:
    """Docker's rule: given servers, else the host's non-loopback ones, else public resolvers."""
    host = host if host is not None else host_resolv()
    servers = list(dns)
    if not servers:
        servers = [s for s in host["nameservers"] if not _is_loopback(s)] or PUBLIC_RESOLVERS
    search = list(dns_search) or host["search"]
    lines = [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if host["options"] and not dns:
        lines.append("options " + " ".join(host["options"]))
    return "\n".join(lines) + "\n"


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return True  # unparsable: do not hand it to the container


def hosts_file(own: list[tuple[str, list[str]]], others: list[tuple[str, list[str]]]) -> str:
    """localhost lines, the container's own names, then peers, links and extra hosts."""
    lines = [HOSTS_HEADER.rstrip("\n")]
    seen = set()
    for ip, names in own + others:
        names = [n for n in dict.fromkeys(names) if n]
        key = (ip, tuple(names))
        if names and key not in seen:
            seen.add(key)
            lines.append(f"{ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def write_in_place(path: str | Path | None, text: str) -> None:
    """Rewrite a file keeping its inode: a bind mount of it keeps showing the new content."""
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except FileNotFoundError:
        return  # the container's directory is gone: nothing to update
    with os.fdopen(fd, "w") as f:
        f.truncate(0)
        f.write(text)
