"""Berth's rows in Docker's JSON shapes (ContainerSummary, ContainerInspectResponse)."""

from dockerapi import health
from dockerapi.refs import docker_id

# observed state -> Docker's State.Status
STATUS = {
    "pending": "created",
    "created": "created",
    "running": "running",
    "paused": "paused",
    "stopped": "exited",
    "removed": "removing",
    "ghost": "dead",
    "error": "dead",
    "unknown": "dead",
}
ZERO_TIME = "0001-01-01T00:00:00Z"


def status_of(container) -> str:
    """Docker's State.Status of a container row."""
    return STATUS.get(container.observed_state, "dead")


def _status_text(container) -> str:
    status = status_of(container)
    if status == "running":
        return "Up" + health.status_suffix(container)
    if status == "paused":
        return "Up (Paused)"
    if status == "exited":
        return f"Exited ({container.exit_code if container.exit_code is not None else 0})"
    if status == "dead":
        return f"Dead ({container.observed_state})"
    return status.capitalize()


def _timestamp(value) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ZERO_TIME


def _ports(container) -> list[dict]:
    ports = []
    for port in (container.spec.get("network") or {}).get("ports") or []:
        item = {"PrivatePort": port.get("container_port"), "Type": port.get("protocol", "tcp")}
        if port.get("host_port"):
            item["PublicPort"] = port["host_port"]
            item["IP"] = port.get("host_ip") or "0.0.0.0"
        ports.append(item)
    return ports


def _command(spec) -> str:
    return " ".join((spec.get("entrypoint") or []) + (spec.get("command") or []))


def _mounts(spec) -> list[dict]:
    mounts = []
    for mount in spec.get("mounts") or []:
        item = {
            "Type": mount.get("type"),
            "Source": mount.get("source", ""),
            "Destination": mount.get("target"),
            "Mode": "ro" if mount.get("read_only") else "",
            "RW": not mount.get("read_only"),
            "Propagation": "",
        }
        if mount.get("type") == "volume":
            item["Name"] = mount.get("source", "")
            item["Driver"] = "local"
        mounts.append(item)
    return mounts


def _network_mode(spec) -> str:
    network = spec.get("network") or {}
    mode = network.get("mode") or "bridge"
    if mode == "bridge" and network.get("networks"):
        return network["networks"][0]
    return mode


def _networks(container) -> dict:
    spec = container.spec
    info = container.network_info or {}
    names = (spec.get("network") or {}).get("networks") or ["bridge"]
    address = info.get("ip") or info.get("ip_address") or info.get("address") or ""
    aliases = (spec.get("network") or {}).get("aliases") or []
    # Docker adds the short id as an alias on user networks; compose looks for it to tell that
    # a container is already connected (otherwise it disconnects and reconnects it).
    short = [docker_id(container)[:12]]
    return {
        name: {
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": info.get("gateway", "") if i == 0 else "",
            "IPAddress": address if i == 0 else "",
            "IPPrefixLen": 0,
            "MacAddress": info.get("mac", "") if i == 0 else "",
            "Aliases": (aliases + short) if name not in ("bridge", "host", "none") else None,
        }
        for i, name in enumerate(names)
    }


def summary(container, created: int | None = None) -> dict:
    """One row of GET /containers/json (`created`: its Unix time, when the caller has it)."""
    spec = container.spec
    return {
        "Id": docker_id(container),
        "Names": [f"/{container.name}"],
        "Image": container.image,
        "ImageID": "",
        "Command": _command(spec),
        "Created": int(container.created_at.timestamp()) if created is None else created,
        "Ports": _ports(container),
        "Labels": container.labels or {},
        "State": status_of(container),
        "Status": _status_text(container),
        "HostConfig": {"NetworkMode": _network_mode(spec)},
        "NetworkSettings": {"Networks": _networks(container)},
        "Mounts": _mounts(spec),
    }


def _port_bindings(spec) -> dict:
    bindings: dict = {}
    for port in (spec.get("network") or {}).get("ports") or []:
        key = f"{port.get('container_port')}/{port.get('protocol', 'tcp')}"
        host_port = str(port.get("host_port") or "")
        if port.get("host_port_end"):
            host_port += f"-{port['host_port_end']}"
        bindings.setdefault(key, []).append(
            {"HostIp": port.get("host_ip", ""), "HostPort": host_port}
        )
    return bindings


def _published(container) -> dict:
    """NetworkSettings.Ports: the bound host ports while the container runs (compose ps)."""
    if status_of(container) not in ("running", "paused"):
        return {}
    return {
        key: [{"HostIp": b["HostIp"] or "0.0.0.0", "HostPort": b["HostPort"]} for b in bound]
        for key, bound in _port_bindings(container.spec).items()
    }


def inspect(container) -> dict:
    """GET /containers/{id}/json, as much of Docker's shape as Berth's row holds."""
    spec = container.spec
    status = status_of(container)
    limits = spec.get("limits") or {}
    restart = spec.get("restart") or {}
    namespaces = spec.get("namespaces") or {}
    network = spec.get("network") or {}
    command = spec.get("command") or []
    entrypoint = spec.get("entrypoint") or []
    argv = entrypoint + command
    return {
        "Id": docker_id(container),
        "Created": _timestamp(container.created_at),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": {
            "Status": status,
            "Running": status == "running",
            "Paused": status == "paused",
            "Restarting": False,
            "OOMKilled": container.error == "OOM killed",
            "Dead": status == "dead",
            "Pid": container.pid or 0,
            "ExitCode": container.exit_code or 0,
            "Error": container.error or "",
            "StartedAt": _timestamp(container.observed_at if status == "running" else None),
            "FinishedAt": _timestamp(container.observed_at if status == "exited" else None),
            **({"Health": h} if (h := health.state_health(container)) else {}),
        },
        "Image": container.image,
        "Name": f"/{container.name}",
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "Binds": None,
            "NetworkMode": _network_mode(spec),
            "PortBindings": _port_bindings(spec),
            "RestartPolicy": {
                "Name": restart.get("name") or "no",
                "MaximumRetryCount": restart.get("max_retries") or 0,
            },
            "AutoRemove": bool(spec.get("auto_remove")),
            # Berth keeps every container's log (docker logs); compose shows no log without it.
            "LogConfig": {"Type": "json-file", "Config": {}},
            "CapAdd": spec.get("cap_add") or None,
            "CapDrop": spec.get("cap_drop") or None,
            "Dns": network.get("dns") or [],
            "DnsSearch": network.get("dns_search") or [],
            "ExtraHosts": network.get("extra_hosts") or None,
            "PidMode": namespaces.get("pid", ""),
            "IpcMode": namespaces.get("ipc", "private"),
            "UTSMode": namespaces.get("uts", ""),
            "Privileged": bool(spec.get("privileged")),
            "PublishAllPorts": bool(network.get("publish_all")),
            "ReadonlyRootfs": bool(spec.get("read_only_rootfs")),
            "SecurityOpt": None,
            "Init": bool(spec.get("init")),
            "Memory": limits.get("memory") or 0,
            "MemorySwap": limits.get("memory_swap") or 0,
            "CpuShares": limits.get("cpu_shares") or 0,
            "CpuPeriod": limits.get("cpu_period") or 0,
            "CpuQuota": limits.get("cpu_quota") or 0,
            "CpusetCpus": limits.get("cpuset_cpus") or "",
            "PidsLimit": limits.get("pids"),
            "Devices": [
                dict(
                    zip(
                        ("PathOnHost", "PathInContainer", "CgroupPermissions"),
                        d.split(":"),
                        strict=False,
                    )
                )
                for d in spec.get("devices") or []
            ],
        },
        "Mounts": _mounts(spec),
        "Config": {
            "Hostname": spec.get("hostname") or "",
            "User": spec.get("user") or "",
            "Tty": bool(spec.get("tty")),
            "OpenStdin": bool(spec.get("stdin_open")),
            "Env": spec.get("env") or [],
            "Cmd": spec.get("command"),
            "Entrypoint": spec.get("entrypoint"),
            "Image": container.image,
            "WorkingDir": spec.get("working_dir") or "",
            "Labels": container.labels or {},
            "StopSignal": spec.get("stop_signal") or "SIGTERM",
            "StopTimeout": spec.get("stop_timeout", 10),
            **({"Healthcheck": h} if (h := health.to_docker(spec.get("healthcheck"))) else {}),
        },
        "NetworkSettings": {"Networks": _networks(container), "Ports": _published(container)},
        "Berth": {
            "Id": container.pk,
            "Team": container.team.name,
            "Host": container.host.name,
            "DesiredState": container.desired_state,
            "ObservedState": container.observed_state,
        },
    }
