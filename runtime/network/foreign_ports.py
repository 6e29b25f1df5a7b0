"""Host ports that someone else's port forward already holds: nftables DNAT rules and maps of
any table but this installation's own (another Berth prefix, Docker or Podman through
iptables-nft, an admin's rules), and the program behind a listening socket.

A DNAT rule holds no socket, so binding a test socket (ports.check_bindable) does not see it;
the second installation would silently take the port's packets. This reads the host's rule set
(libnftables, JSON output, one `list ruleset`; this installation's own table is skipped) and
answers with what holds a port, to be named in the refusal.
"""

from __future__ import annotations

import ctypes
import json
import re
import subprocess
import threading
from dataclasses import dataclass

from runtime.errors import Conflict

_LIB_NAME = "libnftables.so.1"
_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON
_guard = threading.Lock()
_NAT_STATEMENTS = ("dnat", "redirect")
_NAT_TARGETS = ("DNAT", "REDIRECT")  # iptables-nft targets it could not express natively


@dataclass(frozen=True)
class Holder:
    """One port forward: protocol, port, host address ('' for any) and who made it."""

    protocol: str
    port: int
    address: str
    owner: str


def _list(command: str) -> dict:
    """Run one nft list command with JSON output; {} when nftables cannot be read."""
    try:
        lib = ctypes.CDLL(_LIB_NAME)
    except OSError:
        return {}
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    with _guard:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            return {}
        try:
            lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON)
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            if lib.nft_run_cmd_from_buffer(ctx, command.encode()) != 0:
                return {}
            raw = lib.nft_ctx_get_output_buffer(ctx) or b"{}"
        finally:
            lib.nft_ctx_free(ctx)
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def _items(document: dict, kind: str):
    for entry in document.get("nftables", []):
        if kind in entry:
            yield entry[kind]


def _walk(node):
    """Every dict inside a JSON expression tree."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _ports_of(right) -> list[int]:
    """The ports a match's right side names: 80, {"set": [80, {"range": [8000, 8010]}]}."""
    if isinstance(right, int):
        return [right]
    if isinstance(right, dict):
        if "range" in right:
            low, high = right["range"]
            if isinstance(low, int) and isinstance(high, int) and high - low < 65536:
                return list(range(low, high + 1))
        if "set" in right:
            return [p for item in right["set"] for p in _ports_of(item)]
    return []


def _is_nat(expr: list) -> bool:
    for node in _walk(expr):
        if any(k in node for k in _NAT_STATEMENTS):
            return True
        xt = node.get("xt")
        if isinstance(xt, dict) and xt.get("name") in _NAT_TARGETS:
            return True
    return False


def _dport(node) -> str | None:
    payload = node.get("payload") if isinstance(node, dict) else None
    if isinstance(payload, dict) and payload.get("field") == "dport":
        protocol = payload.get("protocol")
        return protocol if protocol in ("tcp", "udp") else None
    return None


def _holders(document: dict, skip: tuple[str, str]) -> list[Holder]:
    """The port forwards of every table in `document` but `skip` (family, name)."""
    found: list[Holder] = []
    maps_used: dict[tuple, str] = {}  # (family, table, map name) -> protocol
    for rule in _items(document, "rule"):
        family, table = rule.get("family"), rule.get("table")
        if (family, table) == skip or family not in ("ip", "inet"):
            continue  # Berth's own maps are checked from its state; ports are IPv4 DNAT
        expr = rule.get("expr") or []
        if not _is_nat(expr):
            continue
        owner = f"an nftables rule in table {family} {table} (chain {rule.get('chain')})"
        for node in _walk(expr):
            match = node.get("match")
            if isinstance(match, dict):
                protocol = _dport(match.get("left"))
                if protocol:
                    for port in _ports_of(match.get("right")):
                        found.append(Holder(protocol, port, "", owner))
            mapping = node.get("map")
            if isinstance(mapping, dict):
                data = mapping.get("data")
                protocols = [p for p in map(_dport, _walk(mapping.get("key"))) if p]
                if isinstance(data, str) and data.startswith("@") and protocols:
                    maps_used[(family, table, data[1:])] = protocols[0]
    for item in _items(document, "map"):
        family, table, name = item.get("family"), item.get("table"), item.get("name")
        protocol = maps_used.get((family, table, name))
        if protocol is None:
            continue
        owner = f"a port map in table {family} {table} (map {name})"
        for element in item.get("elem") or []:
            key = element[0] if isinstance(element, list) and element else element
            address = ""
            if isinstance(key, dict) and "concat" in key:
                parts = key["concat"]
                address = parts[0] if len(parts) > 1 and isinstance(parts[0], str) else ""
                key = parts[-1]
            for port in _ports_of(key):
                found.append(Holder(protocol, port, address, owner))
    return found


def held(own_table: str, family: str = "ip") -> list[Holder]:
    """Every port forward on the host outside this installation's table `family own_table`.

    One `list ruleset` (libnftables reads the kernel's whole rule set for any list command, so
    listing table by table costs more, measured in bench/foreign_ports.py)."""
    return _holders(_list("list ruleset"), (family, own_table))


def conflict(holders: list[Holder], protocol: str, host_ip: str, port: int) -> Holder | None:
    """The holder of `host_ip:port/protocol` among `holders` (any address overlaps all)."""
    for holder in holders:
        if holder.protocol != protocol or holder.port != port:
            continue
        if not holder.address or not host_ip or holder.address == host_ip:
            return holder
    return None


def refuse_if_held(holders: list[Holder], protocol: str, host_ip: str, port: int) -> None:
    """Raise Conflict naming who holds `host_ip:port/protocol` through a port forward."""
    holder = conflict(holders, protocol, host_ip, port)
    if holder is not None:
        raise Conflict(
            f"host port {host_ip or '0.0.0.0'}:{port}/{protocol} is already forwarded by "
            f"{holder.owner}"
        )


_SS_USER = re.compile(r'\("([^"]+)",pid=(\d+)')


def socket_owner(host_ip: str, port: int, protocol: str) -> str:
    """Who listens on the port, as 'program (pid N)' from ss(8); 'another program' if unknown."""
    flag = "-t" if protocol == "tcp" else "-u"
    try:
        out = subprocess.run(
            ["ss", "-H", "-l", "-n", "-p", flag, f"sport = :{port}"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "another program"
    found = _SS_USER.search(out)
    if found:
        return f"{found.group(1)} (pid {found.group(2)})"
    return "another program"
