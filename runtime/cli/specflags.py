"""The `run`/`create` flags, and how they become one ContainerSpec dict."""

from __future__ import annotations

import argparse

from runtime.errors import InvalidSpec
from runtime.spec import RestartPolicy, parse_size


def add_spec_flags(p: argparse.ArgumentParser) -> None:
    """Docker's container flags that Berth honours (anything else argparse refuses)."""
    a = p.add_argument
    a("--name")
    a("-i", "--interactive", action="store_true", help="keep STDIN open")
    a("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    a("-e", "--env", action="append", default=[], help="KEY=value")
    a("--env-file", action="append", default=[])
    a("-w", "--workdir")
    a("-u", "--user")
    a("-h", "--hostname")
    a("-l", "--label", action="append", default=[])
    a("-v", "--volume", action="append", default=[], help="name:/path[:ro], /host:/path[:ro]")
    a(
        "--mount",
        action="append",
        default=[],
        help="type=volume|bind|tmpfs,source=..,target=..[,readonly]",
    )
    a("--tmpfs", action="append", default=[], help="/path[:options]")
    a("--read-only", action="store_true")
    a("-m", "--memory")
    a("--memory-swap")
    a("--cpus", type=float)
    a("--cpu-shares", type=int)
    a("--cpu-quota", type=int)
    a("--cpu-period", type=int)
    a("--cpuset-cpus")
    a("--pids-limit", type=int)
    a("--blkio-weight", type=int)
    a("--restart", default="no")
    a("--cap-add", action="append", default=[])
    a("--cap-drop", action="append", default=[])
    a("--privileged", action="store_true")
    a("--security-opt", action="append", default=[])
    a("--device", action="append", default=[])
    a("--network", "--net", default="bridge")
    a("--network-alias", action="append", default=[])
    a("--link", action="append", default=[])
    a("-p", "--publish", action="append", default=[])
    a("-P", "--publish-all", action="store_true")
    a("--ip")
    a("--mac-address")
    a("--dns", action="append", default=[])
    a("--dns-search", action="append", default=[])
    a("--add-host", action="append", default=[])
    a("--ipc")
    a("--pid")
    a("--uts")
    a("--cgroupns")
    a("--userns")
    a("--init", action="store_true")
    a("--stop-signal", default="SIGTERM")
    a("--stop-timeout", type=int, default=10)
    a("--entrypoint")
    a("image")
    a("cmd", nargs=argparse.REMAINDER)


def _volume(text: str) -> dict:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise InvalidSpec(f"invalid volume {text!r} (use name:/path[:ro] or /host:/path[:ro])")
    source, target = parts[0], parts[1]
    return {
        "type": "bind" if source.startswith("/") else "volume",
        "source": source,
        "target": target,
        "read_only": len(parts) == 3 and parts[2] == "ro",
    }


def _mount(text: str) -> dict:
    m = {"type": "volume", "options": []}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key == "type":
            m["type"] = value
        elif key in ("source", "src"):
            m["source"] = value
        elif key in ("target", "dst", "destination"):
            m["target"] = value
        elif key in ("readonly", "ro"):
            m["read_only"] = value in ("", "true", "1")
        elif key == "tmpfs-size":
            m["options"].append(f"size={value}")
        elif key == "tmpfs-mode":
            m["options"].append(f"mode={value}")
        else:
            raise InvalidSpec(f"unsupported --mount option {key!r}")
    return m


def _namespace(value: str | None, kind: str) -> str | None:
    if value is None:
        return None
    if value in ("host", "private") or value.startswith("container:"):
        return value
    raise InvalidSpec(f"invalid --{kind} value {value!r} (host, private or container:<name>)")


def _security(opts: list[str], spec: dict) -> None:
    for opt in opts:
        key, _, value = opt.replace("=", ":", 1).partition(":")
        if key == "no-new-privileges":
            spec["no_new_privileges"] = value in ("", "true")
        elif key == "seccomp" and value == "unconfined":
            spec["seccomp"] = False
        else:
            raise InvalidSpec(f"unsupported --security-opt {opt!r}")


def _env_files(paths: list[str]) -> list[str]:
    env = []
    for path in paths:
        try:
            with open(path) as f:
                env += [line.strip() for line in f if line.strip() and not line.startswith("#")]
        except OSError as err:
            raise InvalidSpec(f"cannot read env file {path}: {err.strerror}") from None
    return env


def spec_from_args(args) -> dict:
    """The ContainerSpec dict for `run`/`create` flags; refuses what cannot be honoured."""
    if args.userns not in (None, "host", "private"):
        raise InvalidSpec(f"invalid --userns value {args.userns!r} (host or private)")
    limits = {}
    if args.memory:
        limits["memory"] = parse_size(args.memory, "memory limit")
    if args.memory_swap:
        limits["memory_swap"] = (
            -1 if args.memory_swap == "-1" else parse_size(args.memory_swap, "memory+swap limit")
        )
    if args.cpus is not None:
        if args.cpu_quota is not None:
            raise InvalidSpec("conflicting options: --cpus and --cpu-quota cannot both be set")
        limits["cpu_period"] = 100000
        limits["cpu_quota"] = int(args.cpus * 100000)
    for key in ("cpu_shares", "cpu_quota", "cpu_period", "cpuset_cpus", "blkio_weight"):
        if getattr(args, key) is not None:
            limits[key] = getattr(args, key)
    if args.pids_limit is not None:
        limits["pids"] = -1 if args.pids_limit <= 0 else args.pids_limit
    from runtime.network import parse_publish

    ports = [vars(m) for text in args.publish for m in parse_publish(text)]
    mode = (
        args.network
        if args.network in ("bridge", "none", "host") or args.network.startswith("container:")
        else "bridge"
    )
    networks = [] if mode != "bridge" or args.network == "bridge" else [args.network]
    restart = RestartPolicy.parse(args.restart)
    labels = dict(item.partition("=")[::2] for item in args.label)
    spec = {
        "image": args.image,
        "name": args.name,
        "command": args.cmd or None,
        "entrypoint": None
        if args.entrypoint is None
        else ([args.entrypoint] if args.entrypoint else []),
        "env": _env_files(args.env_file) + args.env,
        "working_dir": args.workdir,
        "user": args.user,
        "hostname": args.hostname,
        "labels": labels,
        "mounts": [_volume(v) for v in args.volume]
        + [_mount(m) for m in args.mount]
        + [
            {
                "type": "tmpfs",
                "target": t.partition(":")[0],
                "options": [o for o in t.partition(":")[2].split(",") if o],
            }
            for t in args.tmpfs
        ],
        "read_only_rootfs": args.read_only,
        "limits": limits,
        "restart": {"name": restart.name, "max_retries": restart.max_retries},
        "cap_add": args.cap_add,
        "cap_drop": args.cap_drop,
        "privileged": args.privileged,
        "devices": args.device,
        "network": {
            "mode": mode,
            "networks": networks,
            "aliases": args.network_alias,
            "links": args.link,
            "ports": ports,
            "publish_all": args.publish_all,
            "mac_address": args.mac_address,
            "ip_address": args.ip,
            "dns": args.dns,
            "dns_search": args.dns_search,
            "extra_hosts": args.add_host,
        },
        "namespaces": {
            k: v
            for k, v in (
                ("ipc", _namespace(args.ipc, "ipc")),
                ("pid", _namespace(args.pid, "pid")),
                ("uts", _namespace(args.uts, "uts")),
                ("cgroup", _namespace(args.cgroupns, "cgroupns")),
                ("user", args.userns),
            )
            if v
        },
        "tty": args.tty,
        "stdin_open": args.interactive,
        "init": args.init,
        "stop_signal": args.stop_signal,
        "stop_timeout": args.stop_timeout,
    }
    _security(args.security_opt, spec)
    return spec
