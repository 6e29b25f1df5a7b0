"""The Docker Engine API (dockerapi/) without an agent: operations stay pending here.

Translation of Docker's create body, refusals by the same gate and policy as the REST API
(Docker-style messages, audited with the client's User-Agent), visibility, 401/501 answers.
"""

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from dockerapi import containers as docker_containers
from dockerapi.frames import frame, unframe
from dockerapi.translate import to_spec

from accounts.models import ApiToken
from audit.models import AuditEvent
from containers.models import Container
from networks.models import Network
from operations.models import Operation
from volumes.models import Volume

pytestmark = pytest.mark.django_db
UA = "Docker-Client/28.2.2 (linux)"
V = "/v1.47"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    """No agent consumes the queue: calls answer once the Operation is queued."""
    monkeypatch.setattr(docker_containers, "WAIT_SECONDS", 0)


@pytest.fixture
def docker(users):
    """docker("developer") -> a client sending that user's bearer token and the CLI's UA."""

    def make(name, **token_options):
        _, secret = ApiToken.issue(
            users[name], f"docker-{name}-{len(token_options)}", **token_options
        )
        client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_USER_AGENT=UA)
        return client

    return make


def _post(client, path, body=None, **extra):
    data = "" if body is None else json.dumps(body)
    return client.post(V + path, data, content_type="application/json", **extra)


def run_body(**host_config):
    """What `docker run -d busybox sleep 1000` sends, with HostConfig changes."""
    host = {
        "Binds": None,
        "NetworkMode": "default",
        "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False,
        "ConsoleSize": [0, 0],
        "CapAdd": None,
        "Sysctls": None,
        "CgroupParent": "",
        "Privileged": False,
        "MemorySwappiness": -1,
        "PidsLimit": 0,
        "Devices": [],
        "Ulimits": [],
        "MaskedPaths": None,
    }
    host.update(host_config)
    return {
        "Image": "busybox",
        "Cmd": ["sleep", "1000"],
        "Env": None,
        "AttachStdout": False,
        "Volumes": {},
        "Labels": {},
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": {"default": {"IPAMConfig": None}}},
    }


def test_no_token_is_401_in_docker_form(api, users):
    for client in (Client(), api("admin")):  # anonymous, and a session without a token
        response = client.get(V + "/containers/json")
        assert response.status_code == 401
        assert "HttpHeaders" in response.json()["message"]
    response = Client(HTTP_AUTHORIZATION="Bearer berth_nope").get("/_ping")
    assert response.status_code == 401 and "Invalid token" in response.json()["message"]


def test_ping_version_and_version_range(docker):
    client = docker("developer")
    response = client.get("/_ping")
    assert response.status_code == 200 and response.content == b"OK"
    assert response["API-Version"] == "1.47"
    assert client.head("/_ping").status_code == 200
    assert client.get("/version").json()["ApiVersion"] == "1.47"
    assert client.get("/v1.41/version").json()["MinAPIVersion"] == "1.41"
    too_old = client.get("/v1.40/version")
    assert too_old.status_code == 400 and "too old" in too_old.json()["message"]
    assert "too new" in client.get("/v1.48/version").json()["message"]


def test_unsupported_paths_answer_501_naming_them(docker):
    client = docker("developer")
    for method, path, words in [
        ("post", "/containers/abc/attach", "attach"),
        ("post", "/swarm/init", "POST /swarm/init"),
        ("get", "/no/such/thing", "GET /no/such/thing"),
    ]:
        response = getattr(client, method)(V + path)
        assert response.status_code == 501, (path, response.content)
        assert (
            response.json()["message"] == f"Berth does not support {words} yet"
            or words in (response.json()["message"])
        ), path
    assert client.put(V + "/containers/create").status_code == 405


def test_translation_of_a_full_create_body():
    body = run_body(
        Memory=64 * 1024 * 1024,
        NanoCpus=500_000_000,
        PidsLimit=100,
        PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        Binds=["data:/data:ro"],
        Mounts=[{"Type": "tmpfs", "Target": "/tmp"}],
        NetworkMode="appnet",
        CapAdd=["NET_ADMIN"],
        CapDrop=["MKNOD"],
        SecurityOpt=["no-new-privileges"],
        ReadonlyRootfs=True,
        RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 3},
        Init=True,
        Dns=["1.1.1.1"],
        PidMode="host",
    )
    body.update(
        Entrypoint=["/bin/sh", "-c"],
        Env=["A=b"],
        WorkingDir="/srv",
        User="1000",
        Hostname="web",
        Labels={"app": "x"},
        Tty=True,
        OpenStdin=True,
        ExposedPorts={"80/tcp": {}},
    )
    spec = to_spec(body, name="web1")
    assert spec["name"] == "web1" and spec["command"] == ["sleep", "1000"]
    assert spec["entrypoint"] == ["/bin/sh", "-c"] and spec["env"] == ["A=b"]
    assert spec["limits"] == {
        "memory": 64 * 1024 * 1024,
        "cpu_period": 100000,
        "cpu_quota": 50000,
        "pids": 100,
    }
    assert spec["mounts"] == [
        {"type": "volume", "source": "data", "target": "/data", "read_only": True},
        {"type": "tmpfs", "source": "", "target": "/tmp", "read_only": False},
    ]
    assert spec["network"]["networks"] == ["appnet"]
    assert spec["network"]["ports"] == [
        {"container_port": 80, "protocol": "tcp", "host_port": 8080}
    ]
    assert spec["network"]["dns"] == ["1.1.1.1"]
    assert spec["namespaces"] == {"pid": "host"}
    assert spec["cap_add"] == ["NET_ADMIN"] and spec["cap_drop"] == ["MKNOD"]
    assert spec["restart"] == {"name": "on-failure", "max_retries": 3}
    assert spec["read_only_rootfs"] and spec["init"] and spec["tty"] and spec["stdin_open"]
    assert spec["user"] == "1000" and spec["hostname"] == "web" and spec["working_dir"] == "/srv"
    host_net = to_spec(run_body(NetworkMode="host", Privileged=True))
    assert host_net["network"]["mode"] == "host" and host_net["privileged"] is True
    assert to_spec(run_body(Binds=["/:/host"]))["mounts"][0] == {
        "type": "bind",
        "source": "/",
        "target": "/host",
        "read_only": False,
    }
    assert to_spec(run_body(SecurityOpt=["seccomp=unconfined"]))["seccomp"] is False


def test_developer_creates_an_ordinary_berth_container(docker, teams, host):
    response = _post(docker("developer"), "/containers/create?name=web1", run_body(Memory=64 << 20))
    assert response.status_code == 201, response.content
    container = Container.objects.get(name="web1")
    assert response.json()["Id"] == f"berth-{container.pk}"
    assert container.team == teams["alpha"] and container.host == host
    assert container.spec["limits"]["memory"] == 64 << 20
    assert container.desired_state == "created"
    assert Operation.objects.get(target_id=str(container.pk)).kind == "container.create"
    event = AuditEvent.objects.filter(action="container.create", outcome="allowed").get()
    assert event.summary["user_agent"] == UA and event.summary["via"] == "docker-api"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"Privileged": True}, "container.privileged"),
        ({"Binds": ["/:/host"]}, "bind mount of host path /"),
        ({"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}]}, "host path /etc"),
        ({"NetworkMode": "host"}, "permission"),
        ({"PidMode": "host"}, "host pid namespace"),
        ({"IpcMode": "host"}, "host ipc namespace"),
        ({"UsernsMode": "host"}, "--userns host"),
        ({"CapAdd": ["SYS_ADMIN"]}, "SYS_ADMIN"),
        ({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]}, "permission"),
        ({"SecurityOpt": ["seccomp=unconfined"]}, "seccomp"),
    ],
)
def test_dangerous_host_config_is_refused_by_the_policy(docker, host, changes, words):
    response = _post(docker("developer"), "/containers/create", run_body(**changes))
    assert response.status_code == 403, response.content
    message = response.json()["message"]
    assert message.startswith("Berth refused this request") and words in message
    assert not Container.objects.exists() and not Operation.objects.exists()
    event = AuditEvent.objects.get(action="container.create", outcome="denied")
    assert event.summary["user_agent"] == UA and words in event.reason


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"Sysctls": {"net.ipv4.ip_forward": "1"}}, 501, "Sysctls"),
        ({"CgroupParent": "/system.slice"}, 501, "CgroupParent"),
        ({"AutoRemove": "yes"}, 400, "AutoRemove must be true or false"),
        (
            {"AutoRemove": True, "RestartPolicy": {"Name": "always"}},
            400,
            "a restart policy and auto-remove",
        ),
        ({"MaskedPaths": []}, 501, "systempaths"),
        ({"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 1}]}, 501, "Ulimits"),
        ({"SecurityOpt": ["apparmor=unconfined"]}, 501, "apparmor"),
        ({"LogConfig": {"Type": "syslog", "Config": {}}}, 501, "log drivers"),
        ({"KernelMemoryX": 1}, 400, "unknown field 'KernelMemoryX' in HostConfig"),
        ({"NanoCpus": 1, "CpuQuota": 5}, 400, "Conflicting options"),
    ],
)
def test_unsupported_or_unknown_fields_fail_closed(docker, host, changes, status, words):
    response = _post(docker("admin"), "/containers/create", run_body(**changes))
    assert response.status_code == status, response.content
    assert words in response.json()["message"]
    assert not Container.objects.exists()


def test_bad_bodies_are_docker_style_400s(docker, host):
    client = docker("developer")
    bad = client.post(V + "/containers/create", "{nope", content_type="application/json")
    assert bad.status_code == 400 and "malformed JSON" in bad.json()["message"]
    unknown = _post(client, "/containers/create", {**run_body(), "Bogus": 1})
    assert "unknown field 'Bogus'" in unknown.json()["message"]
    invalid = _post(client, "/containers/create?name=-bad", run_body())
    assert invalid.status_code == 400 and "name" in invalid.json()["message"]
    no_image = _post(client, "/containers/create", {"Cmd": ["true"]})
    assert no_image.status_code == 400 and "Image" in no_image.json()["message"]
    assert not Container.objects.exists()


def test_read_only_token_creates_nothing(docker, host):
    response = _post(docker("developer", read_only=True), "/containers/create", run_body())
    assert response.status_code == 403 and "read-only" in response.json()["message"]


def test_a_caller_sees_only_their_teams_containers(docker, containers):
    client = docker("developer")
    listed = client.get(V + "/containers/json?all=1").json()
    assert [c["Names"] for c in listed] == [["/tp-web-a"]]
    assert client.get(V + '/containers/json?all=1&filters={"label":["app=web"]}').json()
    assert client.get(V + '/containers/json?all=1&filters={"label":["app=db"]}').json() == []
    bad = client.get(V + '/containers/json?filters={"nope":["x"]}')
    assert bad.status_code == 400 and "invalid filter 'nope'" in bad.json()["message"]
    beta = f"berth-{containers['beta'].pk}"
    for method, path in [
        ("get", f"/containers/{beta}/json"),
        ("get", "/containers/tp-web-b/json"),
        ("post", "/containers/tp-web-b/stop"),
        ("post", f"/containers/{beta}/start"),
        ("delete", "/containers/tp-web-b?force=1"),
        ("get", "/containers/tp-web-b/logs?stdout=1"),
    ]:
        response = getattr(client, method)(V + path)
        assert response.status_code == 404, (path, response.content)
        assert response.json()["message"].startswith("No such container")
    assert (
        AuditEvent.objects.filter(outcome="denied", object_id__in=["tp-web-b", beta]).count() == 6
    )
    inspected = client.get(V + "/containers/tp-web-a/json").json()
    assert inspected["Name"] == "/tp-web-a" and inspected["Berth"]["Team"] == "tp-alpha"
    assert not Operation.objects.exists()


def test_lifecycle_goes_through_the_services(docker, containers):
    client = docker("developer")
    alpha = containers["alpha"]
    assert client.post(V + "/containers/tp-web-a/start").status_code == 204
    alpha.refresh_from_db()
    assert alpha.desired_state == "running"
    Container.objects.filter(pk=alpha.pk).update(observed_state="running")
    assert client.post(V + "/containers/tp-web-a/start").status_code == 304
    refused = client.delete(V + "/containers/tp-web-a")
    assert refused.status_code == 409 and "container is running" in refused.json()["message"]
    assert client.post(V + "/containers/tp-web-a/stop?t=3").status_code == 204
    assert client.post(V + "/containers/tp-web-a/kill?signal=SIGTERM").status_code == 204
    assert client.delete(V + "/containers/tp-web-a?force=1").status_code == 204
    kinds = list(Operation.objects.order_by("id").values_list("kind", "params"))
    assert kinds == [
        ("container.start", {}),
        ("container.stop", {"timeout": 3}),
        ("container.kill", {"signal": "SIGTERM"}),
        ("container.remove", {"force": True}),
    ]
    viewer = docker("viewer")
    assert viewer.post(V + "/containers/tp-web-a/stop").status_code == 403


def test_exec_create_is_decided_and_bound_to_the_caller(docker, containers):
    Container.objects.filter(pk=containers["alpha"].pk).update(observed_state="running")
    client = docker("developer")
    created = _post(client, "/containers/tp-web-a/exec", {"Cmd": ["id"], "AttachStdout": True})
    assert created.status_code == 201
    exec_id = created.json()["Id"]
    other = docker("admin")
    assert other.get(f"{V}/exec/{exec_id}/json").status_code == 404  # another user's exec
    assert client.get(f"{V}/exec/{exec_id}x/json").status_code == 404  # forged
    # A TTY exec is created here; starting it needs the listener's upgraded connection.
    tty = _post(client, "/containers/tp-web-a/exec", {"Cmd": ["sh"], "Tty": True})
    assert tty.status_code == 201
    started = _post(client, f"/exec/{tty.json()['Id']}/start", {"Tty": True})
    assert started.status_code == 400 and "listener" in started.json()["message"]
    assert client.get(f"{V}/exec/{tty.json()['Id']}/json").json()["OpenStdin"] is False


def test_volumes_and_networks_of_the_callers_team(docker, teams, host):
    client = docker("developer")
    made = _post(client, "/volumes/create", {"Name": "data", "Driver": "local"})
    assert made.status_code == 201 and made.json()["Name"] == "data"
    assert Volume.objects.get(name="data").team == teams["alpha"]
    names = [v["Name"] for v in client.get(V + "/volumes").json()["Volumes"]]
    assert names == ["data"]
    assert client.delete(V + "/volumes/data").status_code == 204
    bind = _post(
        client,
        "/volumes/create",
        {"Name": "sneaky", "DriverOpts": {"device": "/etc", "o": "bind", "type": "none"}},
    )
    assert bind.status_code == 403
    net = _post(client, "/networks/create", {"Name": "appnet", "Driver": "bridge"})
    assert net.status_code == 201
    assert Network.objects.get(name="appnet").team == teams["alpha"]
    listed = {n["Name"] for n in client.get(V + "/networks").json()}
    assert listed == {"bridge", "host", "none", "appnet"}
    assert client.delete(V + "/networks/bridge").status_code == 403
    assert client.delete(V + "/networks/appnet").status_code == 204
    Network.objects.create(team=teams["beta"], host=host, name="betanet")
    assert client.delete(V + "/networks/betanet").status_code == 404
    overlay = _post(client, "/networks/create", {"Name": "o", "Driver": "overlay"})
    assert overlay.status_code == 501
    kinds = sorted(Operation.objects.values_list("kind", flat=True))
    assert kinds == ["network.create", "network.remove", "volume.create", "volume.remove"]


def test_docker_volume_create_counts_against_the_team_volume_quota(docker, teams, host):
    teams["alpha"].quotas = {"volumes": 1}
    teams["alpha"].save(update_fields=["quotas"])
    client = docker("developer")
    assert _post(client, "/volumes/create", {"Name": "first"}).status_code == 201
    refused = _post(client, "/volumes/create", {"Name": "second"})
    assert refused.status_code == 403
    expected = f"volumes: team {teams['alpha'].name}'s quota is 1, 1 in use, this asks 1 more"
    assert expected in refused.json()["message"]
    assert not Volume.objects.filter(name="second").exists()
    assert AuditEvent.objects.filter(action="volume.create", outcome="denied").exists()
    assert list(Operation.objects.values_list("kind", flat=True)) == ["volume.create"]


def test_create_token_prints_a_working_token_once(users):
    out = io.StringIO()
    call_command(
        "create_token", users["developer"].username, "--name", "ci", "--days", "3", stdout=out
    )
    secret = out.getvalue().strip()
    token = ApiToken.objects.get(name="ci")
    assert secret.startswith("berth_") and token.key_hash != secret and not token.read_only
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/_ping").status_code == 200
    out = io.StringIO()
    call_command(
        "create_token", users["viewer"].username, "--name", "ro", "--read-only", stdout=out
    )
    assert ApiToken.objects.get(name="ro").read_only


def test_frames_round_trip():
    data = frame("stdout", b"hi\n") + frame("stderr", b"oops\n")
    assert data[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x03"
    assert unframe(data) == [(1, b"hi\n"), (2, b"oops\n")]
