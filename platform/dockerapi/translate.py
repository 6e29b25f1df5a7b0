"""Docker's create body (Config + HostConfig + NetworkingConfig) -> Berth's container spec dict.

Fail closed: every field of the Docker API is listed here. A field Berth maps is translated
(dangerous ones into the spec fields the gate's container policy judges: `privileged`,
`mounts` of type bind, `namespaces`, `network.mode`, `cap_add`, `devices`, `seccomp`,
`no_new_privileges`); a field Berth cannot honour is accepted only at its empty value (what the
docker CLI sends for an option not given) and answers 501 otherwise; a field Docker does not
have answers 400. Nothing is ignored silently.

The result still goes through `containers.api.spec.parse_spec` (the REST API's typed spec) and
the gate, like a body of POST /api/v1/containers/.
"""

from config.ids import is_id
from dockerapi import create_fields as fields
from dockerapi import health
from dockerapi.body_values import as_dict, empty, integer, strings, unknown
from dockerapi.errors import bad_request, not_supported
from dockerapi.limits import limits_of

TEAM_LABEL = "io.berth.team"
HOST_LABEL = "io.berth.host"


_DEFAULT_NETWORKS = ("", "default", "bridge")


def _port_key(key: str) -> tuple[int, str]:
    """'80/tcp' -> (80, 'tcp')."""
    number, _, protocol = str(key).partition("/")
    protocol = protocol or "tcp"
    if not is_id(number) or protocol not in ("tcp", "udp"):
        if protocol == "sctp":
            raise not_supported("sctp ports")
        raise bad_request(f"invalid port {key!r} (use <port>/tcp or <port>/udp)")
    return int(number), protocol


def _host_port(value) -> tuple[int, int]:
    """'8080' -> (8080, 0); '8000-8010' -> (8000, 8010); '' -> (0, 0)."""
    text = str(value or "")
    first, dash, last = text.partition("-")
    if not is_id(first) and first != "" or (dash and not is_id(last)):
        raise bad_request(f"invalid host port {text!r}")
    return int(first or 0), int(last) if dash else 0


def _ports(host: dict, config: dict) -> list[dict]:
    ports = []
    bound = set()
    for key, bindings in as_dict(host.get("PortBindings"), "PortBindings").items():
        container_port, protocol = _port_key(key)
        bound.add((container_port, protocol))
        for binding in bindings or [{}]:
            binding = as_dict(binding, "a port binding")
            unknown(binding, {"HostIp", "HostPort"}, "PortBindings")
            first, last = _host_port(binding.get("HostPort"))
            item = {"container_port": container_port, "protocol": protocol, "host_port": first}
            if last:
                item["host_port_end"] = last
            if binding.get("HostIp"):
                item["host_ip"] = binding["HostIp"]
            ports.append(item)
    if host.get("PublishAllPorts"):
        # -P: every exposed port of the request on a free host port (the image's own exposed
        # ports are published by the runtime's publish_all).
        for key in as_dict(config.get("ExposedPorts"), "ExposedPorts"):
            container_port, protocol = _port_key(key)
            if (container_port, protocol) not in bound:
                ports.append({"container_port": container_port, "protocol": protocol})
    else:
        for key in as_dict(config.get("ExposedPorts"), "ExposedPorts"):
            _port_key(key)  # EXPOSE only documents a port; it must still be a valid one
    return ports


def _bind(text: str) -> dict:
    """'src:dst[:opts]' -> a Berth mount (host path: bind; a name: volume)."""
    if not isinstance(text, str):
        raise bad_request("Binds must be a list of strings")
    parts = text.split(":")
    if len(parts) < 2 or len(parts) > 3:
        raise bad_request(f"invalid bind {text!r} (use source:target[:ro])")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 and parts[2] else []
    mount = {
        "type": "bind" if source.startswith("/") else "volume",
        "source": source,
        "target": target,
        "read_only": False,
    }
    for option in options:
        if option == "ro":
            mount["read_only"] = True
        elif option not in ("rw",):
            raise not_supported(f"the bind option {option!r}")
    return mount


def _mount(item) -> dict:
    item = as_dict(item, "a mount")
    unknown(
        item,
        {
            "Target",
            "Source",
            "Type",
            "ReadOnly",
            "Consistency",
            "BindOptions",
            "VolumeOptions",
            "ImageOptions",
            "TmpfsOptions",
        },
        "Mounts",
    )
    kind = item.get("Type") or "volume"
    if kind not in ("bind", "volume", "tmpfs"):
        raise not_supported(f"mounts of type {kind!r}")
    for key in ("BindOptions", "VolumeOptions", "ImageOptions", "TmpfsOptions"):
        if not empty(item.get(key)) and any(not empty(v) for v in item[key].values()):
            raise not_supported(f"{key} in Mounts")
    if item.get("Consistency") not in (None, "", "default", "consistent"):
        raise not_supported("mount consistency")
    return {
        "type": kind,
        "source": item.get("Source") or "",
        "target": item.get("Target") or "",
        "read_only": bool(item.get("ReadOnly")),
    }


def _security(options: list[str], spec: dict) -> None:
    for option in options:
        key, _, value = option.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            if value in ("", "true"):
                spec["no_new_privileges"] = True
            elif value == "false":
                spec["no_new_privileges"] = False
            else:
                raise bad_request(f"invalid security option {option!r}")
        elif key == "seccomp" and value == "unconfined":
            spec["seccomp"] = False
        else:
            raise not_supported(f"the security option {option!r}")


def _namespace(mode: str, kind: str, spec: dict, *, private=("", "private")) -> None:
    if mode in private:
        return
    if mode == "host" or mode.startswith("container:"):
        spec.setdefault("namespaces", {})[kind] = mode
        return
    raise not_supported(f"{kind} mode {mode!r}")


def _network(host: dict, config: dict, networking: dict, spec: dict) -> None:
    network = {}
    mode = host.get("NetworkMode") or ""
    if config.get("NetworkDisabled"):
        mode = "none"
    named = []
    if mode in _DEFAULT_NETWORKS:
        pass
    elif mode in ("none", "host") or mode.startswith("container:"):
        network["mode"] = mode
    else:
        named.append(mode)
    aliases = []
    endpoints = as_dict(networking.get("EndpointsConfig"), "EndpointsConfig")
    for name, endpoint in endpoints.items():
        endpoint = as_dict(endpoint, f"endpoint {name}")
        unknown(endpoint, fields.ENDPOINT_FIELDS, f"EndpointsConfig.{name}")
        if name not in _DEFAULT_NETWORKS and name != mode and name not in named:
            named.append(name)
        aliases += strings(endpoint.get("Aliases"), "Aliases")
        ipam = as_dict(endpoint.get("IPAMConfig"), "IPAMConfig")
        if ipam.get("IPv4Address"):
            network["ip_address"] = ipam["IPv4Address"]
        if any(not empty(v) for k, v in ipam.items() if k != "IPv4Address"):
            raise not_supported("IPAMConfig other than IPv4Address")
        if endpoint.get("MacAddress"):
            network["mac_address"] = endpoint["MacAddress"]
        for key in ("Links", "DriverOpts", "GwPriority"):
            if not empty(endpoint.get(key)):
                raise not_supported(f"{key} in EndpointsConfig")
    if config.get("MacAddress"):
        network["mac_address"] = config["MacAddress"]
    if named:
        network["networks"] = named
    if aliases:
        network["aliases"] = aliases
    ports = _ports(host, config)
    if ports:
        network["ports"] = ports
    if host.get("PublishAllPorts"):
        network["publish_all"] = True
    for docker_key, key in (
        ("Dns", "dns"),
        ("DnsSearch", "dns_search"),
        ("ExtraHosts", "extra_hosts"),
        ("Links", "links"),
    ):
        values = strings(host.get(docker_key), docker_key)
        if values:
            network[key] = [v.lstrip("/") for v in values] if key == "links" else values
    if network:
        spec["network"] = network


def _devices(items) -> list[str]:
    devices = []
    for item in items or []:
        item = as_dict(item, "a device")
        unknown(item, {"PathOnHost", "PathInContainer", "CgroupPermissions"}, "Devices")
        text = item.get("PathOnHost") or ""
        inside = item.get("PathInContainer") or text
        permissions = item.get("CgroupPermissions") or "rwm"
        devices.append(f"{text}:{inside}:{permissions}")
    return devices


def to_spec(body: dict, name: str | None = None) -> dict:
    """The Berth spec dict of a Docker create body (raises DockerError 400 or 501)."""
    unknown(body, fields.TOP_LEVEL, "the container config")
    host = as_dict(body.get("HostConfig"), "HostConfig")
    networking = as_dict(body.get("NetworkingConfig"), "NetworkingConfig")
    unknown(
        host,
        fields.HOST_MAPPED | set(fields.HOST_EMPTY_ONLY) | fields.HOST_CLIENT_SIDE,
        "HostConfig",
    )
    unknown(networking, {"EndpointsConfig"}, "NetworkingConfig")
    for key, what in fields.CONFIG_EMPTY_ONLY.items():
        if not empty(body.get(key)):
            raise not_supported(what)
    for key, what in fields.HOST_EMPTY_ONLY.items():
        if not empty(host.get(key)):
            raise not_supported(what)
    if not isinstance(body.get("Image"), str) or not body["Image"].strip():
        raise bad_request("Image is required")

    spec: dict = {"image": body["Image"]}
    if name:
        spec["name"] = name
    cmd = body.get("Cmd")
    if cmd is not None:
        spec["command"] = strings(cmd, "Cmd")
    entrypoint = body.get("Entrypoint")
    if entrypoint is not None:
        spec["entrypoint"] = strings(entrypoint, "Entrypoint")
    env = strings(body.get("Env"), "Env")
    if env:
        spec["env"] = env
    for docker_key, key in (
        ("WorkingDir", "working_dir"),
        ("User", "user"),
        ("Hostname", "hostname"),
    ):
        if body.get(docker_key):
            spec[key] = body[docker_key]
    labels = as_dict(body.get("Labels"), "Labels")
    if labels:
        spec["labels"] = labels
    for docker_key, key in (("Tty", "tty"), ("OpenStdin", "stdin_open")):
        if body.get(docker_key):
            spec[key] = True
    if body.get("StopSignal"):
        spec["stop_signal"] = body["StopSignal"]
    if body.get("StopTimeout") is not None:
        spec["stop_timeout"] = integer(body["StopTimeout"], "StopTimeout")
    healthcheck = health.to_spec(body.get("Healthcheck"))
    if healthcheck is not None:
        spec["healthcheck"] = healthcheck

    mounts = [_bind(text) for text in strings(host.get("Binds"), "Binds")]
    mounts += [_mount(item) for item in host.get("Mounts") or []]
    targets = {m["target"] for m in mounts}
    for target in as_dict(body.get("Volumes"), "Volumes"):
        if target not in targets:
            raise not_supported(f"anonymous volumes (Volumes {target})")
    if host.get("VolumeDriver") not in (None, "", "local"):
        raise not_supported(f"the volume driver {host['VolumeDriver']!r}")
    if mounts:
        spec["mounts"] = mounts

    limits = limits_of(host)
    if limits:
        spec["limits"] = limits
    restart = as_dict(host.get("RestartPolicy"), "RestartPolicy")
    unknown(restart, {"Name", "MaximumRetryCount"}, "RestartPolicy")
    if restart.get("Name") not in (None, "", "no"):
        spec["restart"] = {
            "name": restart["Name"],
            "max_retries": integer(restart.get("MaximumRetryCount"), "MaximumRetryCount"),
        }
    auto_remove = host.get("AutoRemove")
    if auto_remove not in (None, False, True):
        raise bad_request("AutoRemove must be true or false")
    if auto_remove:
        spec["auto_remove"] = True
    log_config = as_dict(host.get("LogConfig"), "LogConfig")
    if log_config.get("Type") not in (None, "", "json-file", "local") or log_config.get("Config"):
        raise not_supported("log drivers and their options (--log-driver, --log-opt)")
    if host.get("Runtime") not in (None, "", "runc", "berth"):
        raise not_supported(f"the runtime {host['Runtime']!r}")
    if host.get("Isolation") not in (None, "", "default"):
        raise not_supported(f"isolation {host['Isolation']!r}")
    # A list (even empty) changes which paths are masked: `--security-opt systempaths=unconfined`.
    for key in ("MaskedPaths", "ReadonlyPaths"):
        if host.get(key) is not None:
            raise not_supported(f"{key} (--security-opt systempaths=unconfined)")

    for docker_key, key in (
        ("Privileged", "privileged"),
        ("ReadonlyRootfs", "read_only_rootfs"),
        ("Init", "init"),
    ):
        if host.get(docker_key):
            spec[key] = True
    cap_add = strings(host.get("CapAdd"), "CapAdd")
    if cap_add:
        spec["cap_add"] = cap_add
    cap_drop = strings(host.get("CapDrop"), "CapDrop")
    if cap_drop:
        spec["cap_drop"] = cap_drop
    devices = _devices(host.get("Devices"))
    if devices:
        spec["devices"] = devices
    _security(strings(host.get("SecurityOpt"), "SecurityOpt"), spec)
    _namespace(host.get("PidMode") or "", "pid", spec)
    _namespace(host.get("IpcMode") or "", "ipc", spec, private=("", "private", "shareable"))
    _namespace(host.get("UTSMode") or "", "uts", spec)
    _namespace(host.get("CgroupnsMode") or "", "cgroup", spec)
    # Berth's containers have a user namespace by default; "host" (a dangerous option) opts out.
    _namespace(host.get("UsernsMode") or "", "user", spec, private=("", "private"))
    _network(host, body, networking, spec)
    return spec
