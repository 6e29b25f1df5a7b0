"""The container create form: plain HTML fields turned into the API's request body.

The form only reshapes text (lines, `8080:80`, `vol:/data:ro`) into the JSON shape the REST
API accepts; validation of that shape and every permission check happen in the core's parser,
policy and gate, exactly as for an API request.
"""

import re
import shlex

from django import forms

# Dangerous options: each form field and the permission that makes it appear.
DANGEROUS_FIELDS = {
    "privileged": "container.privileged",
    "cap_add": "container.cap_add",
    "devices": "container.devices",
    "host_namespaces": "container.host_namespaces",
    "unconfined": "container.unconfined",
}
RESTART_CHOICES = [
    ("no", "no"),
    ("on-failure", "on-failure"),
    ("always", "always"),
    ("unless-stopped", "unless-stopped"),
]
PORT_RE = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(?:(?P<host>\d{1,5})(?:-(?P<host_end>\d{1,5}))?:)?(?P<container>\d{1,5})(?:/(?P<proto>tcp|udp))?$"
)
NAMESPACE_CHOICES = [("pid", "pid"), ("ipc", "ipc"), ("uts", "uts")]


def _lines(text: str) -> list[str]:
    return [
        line.strip()
        for line in (text or "").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


class ContainerForm(forms.Form):
    """Everything a person usually sets when they create a container."""

    name = forms.CharField(max_length=128, required=False)
    image = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"list": "image-tags"}))
    command = forms.CharField(required=False, help_text="e.g. sleep 1000 (split like a shell)")
    entrypoint = forms.CharField(
        required=False, help_text="replaces the image's entrypoint (split like a shell)"
    )
    working_dir = forms.CharField(
        required=False, max_length=4096, label="Working directory", help_text="absolute path"
    )
    user = forms.CharField(required=False, max_length=128, help_text="user[:group], name or id")
    hostname = forms.CharField(required=False, max_length=253)
    dns = forms.CharField(
        required=False, label="DNS servers", help_text="IP addresses, space separated"
    )
    stop_timeout = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=3600,
        label="Stop timeout (s)",
        help_text="seconds between the stop signal and SIGKILL (default 10)",
    )
    health_cmd = forms.CharField(
        required=False,
        max_length=4000,
        label="Health check",
        help_text="a shell command run inside; exit 0 means healthy (e.g. wget -q -O- localhost)",
    )
    health_interval = forms.IntegerField(
        required=False, min_value=1, max_value=86400, label="Check every (s)", initial=30
    )
    health_timeout = forms.IntegerField(
        required=False, min_value=1, max_value=86400, label="Check timeout (s)", initial=30
    )
    health_retries = forms.IntegerField(
        required=False, min_value=1, max_value=100, label="Failures before unhealthy", initial=3
    )
    health_start_period = forms.IntegerField(
        required=False, min_value=0, max_value=86400, label="Start period (s)", initial=0
    )
    team = forms.TypedChoiceField(coerce=int, choices=())
    host = forms.TypedChoiceField(coerce=int, choices=())
    env = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="KEY=value, one a line"
    )
    labels = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="key=value, one a line"
    )
    ports = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="[ip:]host:container[/udp], one a line",
    )
    volumes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="volume:/path[:ro], tmpfs:/path, or /host/path:/path[:ro] (bind, if allowed)",
    )
    memory = forms.CharField(required=False, max_length=16, help_text="e.g. 256m")
    cpus = forms.DecimalField(required=False, min_value=0.01, max_value=256, decimal_places=2)
    pids = forms.IntegerField(required=False, min_value=-1)
    network = forms.CharField(
        required=False, max_length=128, help_text="bridge (default), none, or a network name"
    )
    restart = forms.ChoiceField(choices=RESTART_CHOICES, initial="no")
    tty = forms.BooleanField(required=False, label="Allocate a TTY (for attach)")
    start = forms.BooleanField(required=False, initial=True, label="Start after creating")
    # Dangerous options; rendered only for users who may use them.
    privileged = forms.BooleanField(required=False)
    cap_add = forms.CharField(required=False, help_text="capabilities, space separated")
    devices = forms.CharField(
        required=False, help_text="/dev/host[:/dev/inside[:rwm]], space separated"
    )
    host_namespaces = forms.MultipleChoiceField(
        required=False, choices=NAMESPACE_CHOICES, widget=forms.CheckboxSelectMultiple
    )
    unconfined = forms.BooleanField(required=False, label="Turn seccomp and no_new_privileges off")

    def __init__(self, *args, teams=(), hosts=(), allowed_dangerous=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.id, t.name) for t in teams]
        self.fields["host"].choices = [(h.id, h.name) for h in hosts]
        # Only the options the user may use are rendered; a forged one still reaches the
        # request body, where the gate refuses it and audits the attempt.
        self.dangerous = [self[name] for name in DANGEROUS_FIELDS if name in allowed_dangerous]

    def _split(self, field: str):
        text = self.cleaned_data[field]
        try:
            return shlex.split(text) if text.strip() else None
        except ValueError as err:
            raise forms.ValidationError(f"cannot split the {field}: {err}") from None

    def clean_command(self):
        return self._split("command")

    def clean_entrypoint(self):
        return self._split("entrypoint")

    def clean_dns(self):
        return (self.cleaned_data["dns"] or "").split()

    def clean_labels(self):
        out, bad = {}, []
        for line in _lines(self.cleaned_data["labels"]):
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                bad.append(f"invalid label {line!r} (use key=value)")
                continue
            out[key.strip()] = value.strip()
        if bad:  # every bad line at once, not the first only
            raise forms.ValidationError(bad)
        return out

    def clean_ports(self):
        out, bad = [], []
        for line in _lines(self.cleaned_data["ports"]):
            match = PORT_RE.match(line)
            if not match:
                bad.append(f"invalid port mapping {line!r}")
                continue
            port = {"container_port": int(match["container"]), "protocol": match["proto"] or "tcp"}
            if match["host"]:
                port["host_port"] = int(match["host"])
            if match["host_end"]:
                port["host_port_end"] = int(match["host_end"])  # Docker: any free port of the range
            if match["ip"]:
                port["host_ip"] = match["ip"].strip("[]")
            out.append(port)
        if bad:
            raise forms.ValidationError(bad)
        return out

    def clean_volumes(self):
        out, bad = [], []
        for line in _lines(self.cleaned_data["volumes"]):
            parts = line.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
                bad.append(f"invalid volume {line!r} (use source:/path[:ro])")
                continue
            source, target = parts[0], parts[1]
            read_only = len(parts) == 3 and parts[2] == "ro"
            if source == "tmpfs":
                out.append({"type": "tmpfs", "target": target})
            elif source.startswith("/"):
                out.append(
                    {"type": "bind", "source": source, "target": target, "read_only": read_only}
                )
            else:
                out.append(
                    {"type": "volume", "source": source, "target": target, "read_only": read_only}
                )
        if bad:
            raise forms.ValidationError(bad)
        return out

    def all_errors(self) -> list[str]:
        """Every error of the form as 'Label: message', in field order (shown at once on top)."""
        out = [str(e) for e in self.non_field_errors()]
        for field in self:
            out += [f"{field.label}: {e}" for e in field.errors]
        return out

    def spec_body(self) -> dict:
        """The API request body (runtime ContainerSpec shape) for the cleaned form."""
        data = self.cleaned_data
        body = {
            "image": data["image"].strip(),
            "env": _lines(data["env"]),
            "labels": data["labels"],
        }
        if data["name"]:
            body["name"] = data["name"].strip()
        if data["command"]:
            body["command"] = data["command"]
        if data.get("entrypoint"):
            body["entrypoint"] = data["entrypoint"]
        for key in ("working_dir", "user", "hostname"):
            if (data.get(key) or "").strip():
                body[key] = data[key].strip()
        if data.get("stop_timeout") is not None:
            body["stop_timeout"] = data["stop_timeout"]
        if (data.get("health_cmd") or "").strip():
            body["healthcheck"] = {"test": ["CMD-SHELL", data["health_cmd"].strip()]}
            for key in ("interval", "timeout", "retries", "start_period"):
                if data.get(f"health_{key}") is not None:
                    body["healthcheck"][key] = data[f"health_{key}"]
        if data["volumes"]:
            body["mounts"] = data["volumes"]
        limits = {}
        if data["memory"]:
            limits["memory"] = data["memory"].strip()
        if data["cpus"]:
            limits["cpu_period"] = 100000
            limits["cpu_quota"] = int(data["cpus"] * 100000)
        if data["pids"] is not None:
            limits["pids"] = data["pids"]
        if limits:
            body["limits"] = limits
        if data["restart"] != "no":
            body["restart"] = {"name": data["restart"]}
        network = {}
        mode = (data["network"] or "bridge").strip()
        if mode in ("none", "host") or mode.startswith("container:"):
            network["mode"] = mode
        elif mode != "bridge":
            network["networks"] = [mode]
        if data["ports"]:
            network["ports"] = data["ports"]
        if data.get("dns"):
            network["dns"] = data["dns"]
        if network:
            body["network"] = network
        if data["tty"]:
            body["tty"] = True
            body["stdin_open"] = True
        if data.get("privileged"):
            body["privileged"] = True
        if data.get("cap_add"):
            body["cap_add"] = data["cap_add"].split()
        if data.get("devices"):
            body["devices"] = data["devices"].split()
        if data.get("host_namespaces"):
            body["namespaces"] = {kind: "host" for kind in data["host_namespaces"]}
        if data.get("unconfined"):
            body["seccomp"] = False
            body["no_new_privileges"] = False
        return body


def _port_line(port: dict) -> str:
    host = str(port.get("host_port") or "")
    if host and port.get("host_port_end"):
        host += f"-{port['host_port_end']}"
    ip = port.get("host_ip") or ""
    if ":" in ip:
        ip = f"[{ip}]"
    text = ":".join(p for p in (ip, host) if p)
    text = f"{text}:{port['container_port']}" if text else str(port["container_port"])
    return text if port.get("protocol", "tcp") == "tcp" else f"{text}/{port['protocol']}"


def _mount_line(mount: dict) -> str:
    if mount.get("type") == "tmpfs":
        return f"tmpfs:{mount['target']}"
    return f"{mount.get('source')}:{mount['target']}" + (":ro" if mount.get("read_only") else "")


def _health_initial(check) -> dict:
    """The health fields of a duplicated container (a CMD check is shown as its shell line)."""
    if not check or not check.get("test") or check["test"][0] == "NONE":
        return {}
    test = check["test"]
    command = test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])
    return {
        "health_cmd": command,
        **{f"health_{k}": int(check[k]) for k in ("interval", "timeout", "retries") if k in check},
        "health_start_period": int(check.get("start_period", 0)),
    }


def initial_from_spec(container) -> dict:
    """The create form's initial values copied from an existing container ("duplicate")."""
    spec = container.spec or {}
    net = spec.get("network") or {}
    limits = spec.get("limits") or {}
    mode = net.get("mode") or "bridge"
    networks = net.get("networks") or []
    quota, period = limits.get("cpu_quota"), limits.get("cpu_period") or 100000
    return {
        "image": spec.get("image") or container.image,
        "name": f"{container.name}-copy",
        "command": shlex.join(spec["command"]) if spec.get("command") else "",
        "entrypoint": shlex.join(spec["entrypoint"]) if spec.get("entrypoint") else "",
        "working_dir": spec.get("working_dir") or "",
        "user": spec.get("user") or "",
        "hostname": spec.get("hostname") or "",
        "dns": " ".join(net.get("dns") or []),
        "stop_timeout": spec.get("stop_timeout"),
        **_health_initial(spec.get("healthcheck")),
        "team": container.team_id,
        "host": container.host_id,
        "env": "\n".join(spec.get("env") or []),
        "labels": "\n".join(f"{k}={v}" for k, v in (spec.get("labels") or {}).items()),
        "ports": "\n".join(_port_line(p) for p in net.get("ports") or []),
        "volumes": "\n".join(_mount_line(m) for m in spec.get("mounts") or []),
        "memory": str(limits["memory"]) if limits.get("memory") else "",
        "cpus": round(quota / period, 2) if quota and quota > 0 else None,
        "pids": limits.get("pids"),
        "network": networks[0] if mode == "bridge" and networks else mode,
        "restart": (spec.get("restart") or {}).get("name") or "no",
        "tty": bool(spec.get("tty")),
        "start": True,
    }
