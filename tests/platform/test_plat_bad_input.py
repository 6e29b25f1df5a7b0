"""Issue 22: bad requests are refused up front with the status they deserve, nothing left behind.

The host's reported facts (Image and Network rows, Host.info from its heartbeat) are written
here as an agent would write them; each bad field is a 400 naming it, audited as failed, and
no container row, operation or volume row is made.
"""

import json
import os
import shutil
import signal

import pytest

from audit.models import AuditEvent
from containers.models import Container
from images.models import Image
from networks.models import Network
from operations.models import Operation
from tests.redis_server import RedisServer
from volumes.models import Volume

pytestmark = pytest.mark.django_db

GiB = 1024**3


@pytest.fixture(autouse=True)
def empty_host_queues(broker, host):
    """Calls these tests send to the host's queues (no agent takes them) are dropped after
    each test, so the next test's queue holds only what it sent."""
    import redis

    yield
    client = redis.Redis.from_url(broker)
    try:
        for key in client.scan_iter(match=f"{host.queue}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def reported(host, teams):
    """The host as its agent reported it: 2 CPUs, 4 GiB, one disk, busybox, a /24 network."""
    host.info = {"mem_total": 4 * GiB, "cpus": "0-1", "block_devices": ["/dev/vda", "/dev/zram0"]}
    host.save(update_fields=["info"])
    Image.objects.create(host=host, image_id="sha256:" + "b" * 64, repo_tags=["busybox:latest"])
    Network.objects.create(
        team=teams["alpha"],
        host=host,
        name="tp-net",
        subnet="10.77.3.0/24",
        gateway="10.77.3.1",
        state="ready",
    )
    return host


def _post(client, spec):
    body = {"team": "tp-alpha", "host": "tp-h1", "spec": {"image": "busybox", **spec}}
    return client.post("/api/v1/containers/", body, format="json")


def _nothing_left():
    assert not Container.objects.exists()
    assert not Operation.objects.exists()
    assert not Volume.objects.exists()


BAD = [
    ({"image": "nosuch:1.0"}, "image", "'nosuch:1.0' is not on host tp-h1"),
    ({"env": ["BIG=" + "x" * (1024 * 1024)]}, "env", "variable BIG is"),
    ({"env": [f"K{i}=" + "x" * 100_000 for i in range(12)]}, "env", "at most 1048576 in all"),
    ({"stop_signal": "SIGBOGUS"}, "stop_signal", "unknown signal 'SIGBOGUS'"),
    ({"network": {"networks": ["tp-nowhere"]}}, "network.networks", "no network 'tp-nowhere'"),
    ({"network": {"extra_hosts": ["db=10.0.0.1"]}}, "network.extra_hosts", "invalid entry"),
    (
        {"network": {"networks": ["tp-net"], "ip_address": "10.9.9.9"}},
        "network.ip_address",
        "10.9.9.9 is outside network 'tp-net' (10.77.3.0/24)",
    ),
    (
        {"network": {"networks": ["tp-net"], "ip_address": "10.77.3.255"}},
        "network.ip_address",
        "not a host address",
    ),
    (
        {"network": {"mac_address": "ff:ff:ff:ff:ff:ff"}},
        "network.mac_address",
        "broadcast or multicast",
    ),
    ({"network": {"mac_address": "01:00:5e:00:00:01"}}, "network.mac_address", "multicast"),
    ({"limits": {"cpuset_cpus": "999"}}, "limits.cpuset_cpus", "CPU 999 is not on host tp-h1"),
    ({"limits": {"cpu_quota": 2**62}}, "limits.cpu_quota", "must be at most"),
    ({"limits": {"cpu_quota": 500_000}}, "limits.cpu_quota", "5 CPUs asked; host tp-h1 has 2"),
    (
        {"limits": {"device_read_bps": [{"path": "/dev/nosuchdisk", "rate": 1048576}]}},
        "limits.device_read_bps",
        "no block device /dev/nosuchdisk",
    ),
    ({"limits": {"memory": "1000000000g"}}, "limits.memory", "more than host tp-h1 has"),
]


@pytest.mark.parametrize(("spec", "field", "words"), BAD, ids=[b[1] + "-" + b[2][:20] for b in BAD])
def test_a_spec_the_host_cannot_honour_is_refused_naming_the_field(
    api, reported, spec, field, words
):
    response = _post(api("admin"), spec)
    # A missing image is 404 (Docker clients pull on it), the rest 400.
    status, code = (404, "no_such_image") if field == "image" else (400, "invalid")
    assert response.status_code == status, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(f"{field}: ") and words in error["message"]
    assert error["details"]["field"] == field
    _nothing_left()
    event = AuditEvent.objects.get(action="container.create")
    assert event.outcome == "failed" and words in event.reason


def test_a_good_spec_on_the_same_host_is_accepted(api, reported):
    spec = {
        "env": ["A=1"],
        "stop_signal": "TERM",
        "network": {
            "networks": ["tp-net"],
            "ip_address": "10.77.3.9",
            "mac_address": "02:42:ac:11:00:02",
            "extra_hosts": ["db:10.0.0.1", "v6:::1"],
        },
        "limits": {
            "cpuset_cpus": "0-1",
            "cpu_quota": 150_000,
            "memory": "256m",
            "device_read_bps": [{"path": "/dev/vda", "rate": 1048576}],
        },
    }
    response = _post(api("admin"), spec)
    assert response.status_code == 202, response.content[:300]
    assert Container.objects.count() == 1


def test_a_host_that_reported_nothing_is_left_to_its_agent(api, host):
    """No heartbeat info and no image rows yet: only the agent can judge."""
    response = _post(api("admin"), {"image": "anything", "limits": {"cpuset_cpus": "7"}})
    assert response.status_code == 202


# -- statuses of the request itself ----------------------------------------------------------


def test_a_body_over_the_limit_is_413(api, host, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body = json.dumps({"team": "tp-alpha", "host": "tp-h1", "spec": {"image": "x" * 100_000}})
    response = api("admin").post("/api/v1/containers/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "too_large",
        "message": "the request body is too large",
        "details": {},
    }
    _nothing_left()


def test_json_nested_too_deep_is_400(api, host):
    body = '{"team": "tp-alpha", "host": "tp-h1", "spec": ' + "[" * 5000 + "]" * 5000 + "}"
    response = api("admin").post("/api/v1/containers/", body, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "nested too deeply" in error["message"]
    _nothing_left()


def _fresh_producers():
    """Celery keeps its broker connections and producers from the URL it first saw: drop them."""
    from config.celery import app as celery_app

    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def frozen_redis(tmp_path, settings):
    """A private redis-server, then SIGSTOPped (frozen, not down); continued and stopped by PID."""
    from config.celery import app as celery_app
    from operations import broker_health

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    server = RedisServer(tmp_path).start()
    # Only the broker: the result backend stays on the session's Redis (Celery keeps one
    # backend object per thread, which would point at this server once it is gone).
    old = celery_app.conf.broker_url
    celery_app.conf.broker_url = server.url
    broker_health._clients.clear()
    _fresh_producers()
    pid = server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield server
    finally:
        os.kill(pid, signal.SIGCONT)
        celery_app.conf.broker_url = old
        broker_health._clients.clear()
        _fresh_producers()
        server.stop()


class _Hung(BaseException):
    """The call outlived the bound (a BaseException: the code under test catches Exception)."""


@pytest.fixture
def bounded():
    """bounded(seconds, fn): fn() in this thread, failing the test if it outlives `seconds`
    (a frozen broker would otherwise hang the test; SIGALRM interrupts the blocked read)."""

    def run(seconds, fn):
        def hung(signum, frame):
            raise _Hung(f"still blocked after {seconds} s")

        old = signal.signal(signal.SIGALRM, hung)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    return run


def test_a_frozen_broker_is_a_503_within_the_bound(api, reported, frozen_redis, bounded):
    from operations import broker_health

    container = Container.objects.create(
        team=reported.networks.first().team,
        host=reported,
        name="tp-frozen",
        image="busybox",
        spec={"image": "busybox"},
    )
    client = api("admin")
    # Twice the broker check's timeout: a request that hangs with Redis fails the test.
    response = bounded(
        broker_health.PING_TIMEOUT_SECONDS * 2 + 5,
        lambda: client.post(f"/api/v1/containers/{container.pk}/start/"),
    )
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("the message broker (Redis)")
    assert not Operation.objects.exists()
    assert Container.objects.get().desired_state == container.desired_state


def test_send_task_cannot_hang_on_a_frozen_broker(reported, frozen_redis, bounded):
    """The check passed and then Redis froze: sending is bounded too, and the row is the outbox."""
    from django.db import transaction

    from operations import dispatch

    op = dispatch.new_operation(
        kind="container.start", target_type="container", target_id=1, host=reported
    )

    def send():
        with transaction.atomic():
            dispatch.send_after_commit(op)

    # on_commit callbacks run at once in a test's atomic block only when captured; run them.
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        send()
    bounded(dispatch.SEND_TIMEOUT_SECONDS * 2 + 5, callbacks[0])
    op.refresh_from_db()
    assert op.state == "pending"


def test_ids_in_unicode_digits_are_404(api, containers):
    client = api("admin")
    for raw in ("%C2%B9", "%D9%A2", "%EF%BC%91"):
        response = client.get(f"/api/v1/containers/{raw}/")
        assert response.status_code == 404, raw


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_a_form_or_unknown_body_over_the_limit_is_413_too(api, host, settings, content_type):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body = "spec=" + "x" * 100_000
    response = api("admin").post("/api/v1/containers/", body, content_type=content_type)
    assert response.status_code in (413, 415), response.content[:200]
    if response.status_code == 413:
        assert response.json()["error"]["code"] == "too_large"
    _nothing_left()


def test_a_failed_create_shows_its_reason_in_the_api_and_the_dashboard(api, users, teams, host):
    from django.test import Client

    from tests.platform.factories import make_container

    reason = "unable to find user nosuchuser: no matching entries in passwd file"
    row = make_container(teams["alpha"], host, "tp-failed", observed_state="error", error=reason)
    body = api("admin").get(f"/api/v1/containers/{row.pk}/").json()
    assert body["observed_state"] == "error" and body["error"] == reason
    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/containers/{row.pk}/").content.decode()
    assert 'id="state-error"' in page and "unable to find user nosuchuser" in page


def test_a_busy_agent_is_503_and_a_silent_host_504(api, containers, settings):
    """No agent consumes the queue here: with a fresh heartbeat the host is up but busy."""
    from django.utils import timezone

    settings.BERTH_RPC_TIMEOUT_SECONDS = 1
    container = containers["alpha"]
    container.host.last_heartbeat = timezone.now()
    container.host.save(update_fields=["last_heartbeat"])
    for query in ("logs/?tail=5", "stats/", "top/"):
        response = api("admin").get(f"/api/v1/containers/{container.pk}/{query}")
        assert response.status_code == 503, query
        error = response.json()["error"]
        assert error["code"] == "host_busy" and "is busy" in error["message"]
    container.host.last_heartbeat = None
    container.host.save(update_fields=["last_heartbeat"])
    response = api("admin").get(f"/api/v1/containers/{container.pk}/logs/?tail=5")
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
    assert not Operation.objects.exists()
