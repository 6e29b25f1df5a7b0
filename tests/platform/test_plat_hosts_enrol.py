"""Hosts (issue 9): enrolment with one-time join tokens, cordon, remove, and placement."""

import time
from datetime import timedelta

import pytest
from agent import heartbeat
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import hash_token
from audit.models import AuditEvent
from config.errors import Conflict, Unavailable
from containers.models import Container
from hosts import joining, placement
from hosts.models import Host, JoinToken
from operations import dispatch
from rbac.models import Role, RoleBinding
from tests.platform.factories import make_container
from trust import keys

JOIN = "/api/v1/hosts/join/"


@pytest.fixture(autouse=True)
def _fresh_throttle():
    # Join attempts are counted per address in the cache; every test starts from zero.
    cache.clear()
    yield
    cache.clear()


def new_key() -> str:
    return keys.encode_public(Ed25519PrivateKey.generate().public_key())


def enrol(api, name="tp-new", **extra):
    response = api("admin").post("/api/v1/hosts/", {"name": name, **extra}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def join(token, key=None, *, agent_time=None):
    body = {"token": token, "public_key": key or new_key(), "agent_time": agent_time or time.time()}
    return APIClient().post(JOIN, body, format="json")


def last_event(action):
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def message(response):
    return response.json()["error"]["message"]


# -- enrolment --------------------------------------------------------------------------------


def test_admin_enrols_a_pending_host_and_gets_a_one_time_token(api):
    body = enrol(api)
    assert body["state"] == "pending" and body["name"] == "tp-new"
    assert body["join_token"].startswith("berth_join_")
    assert body["join_token"] in body["join_command"]
    row = JoinToken.objects.get(host__name="tp-new")
    assert row.token_hash == hash_token(body["join_token"])  # only the hash is kept
    assert body["join_token"] not in str(JoinToken.objects.values().get())
    assert timedelta(minutes=59) < row.expires_at - timezone.now() <= timedelta(hours=1)
    event = last_event("host.create")
    assert event.outcome == "allowed" and event.object_repr == "tp-new"
    assert body["join_token"] not in str(event.summary)


def test_token_lifetime_is_configurable_up_to_a_day(api):
    enrol(api, "tp-day", expires_in=86400)
    row = JoinToken.objects.get(host__name="tp-day")
    assert row.expires_at - timezone.now() > timedelta(hours=23)
    response = api("admin").post(
        "/api/v1/hosts/", {"name": "tp-long", "expires_in": 86401}, format="json"
    )
    assert response.status_code == 400 and not Host.objects.filter(name="tp-long").exists()


def test_enrol_refuses_unknown_fields_and_taken_names(api, host):
    admin = api("admin")
    response = admin.post("/api/v1/hosts/", {"name": "tp-x", "state": "up"}, format="json")
    assert response.status_code == 400 and "state" in response.json()["error"]["details"]
    response = admin.post("/api/v1/hosts/", {"name": host.name}, format="json")
    assert response.status_code == 409
    assert message(response) == f"a host named {host.name} exists"
    assert Host.objects.filter(name=host.name).count() == 1


def test_a_developer_cannot_enrol_and_is_audited(api):
    response = api("developer").post("/api/v1/hosts/", {"name": "tp-dev"}, format="json")
    assert response.status_code == 403
    assert not Host.objects.filter(name="tp-dev").exists()
    assert last_event("host.create").outcome == "denied"


def test_join_token_can_be_reissued_for_a_pending_host_only(api, host):
    body = enrol(api)
    admin = api("admin")
    response = admin.post(f"/api/v1/hosts/{body['id']}/join-token/", {}, format="json")
    assert response.status_code == 201
    assert message(join(body["join_token"])).startswith("this join token expired at")
    assert join(response.json()["join_token"]).status_code == 200
    again = admin.post(f"/api/v1/hosts/{body['id']}/join-token/", {}, format="json")
    assert again.status_code == 409 and "joined already" in message(again)
    response = admin.post(f"/api/v1/hosts/{host.pk}/join-token/", {}, format="json")
    assert response.status_code == 409


# -- joining ----------------------------------------------------------------------------------


def test_join_records_the_key_and_answers_the_identity(api, settings):
    settings.BERTH_AGENT_BROKER_URL = ""
    body = enrol(api)
    key = new_key()
    response = join(body["join_token"], key)
    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["host"] == "tp-new" and answer["queue"] == "host.tp-new"
    assert answer["control_keys"] == [keys.control_public_key()]
    assert abs(answer["server_time"] - time.time()) < 5
    assert "broker_url" not in answer
    host = Host.objects.get(name="tp-new")
    assert host.public_key == key and host.state == "down"  # up with its first heartbeat
    assert JoinToken.objects.get(host=host).used_at is not None
    event = last_event("host.join")
    assert event.outcome == "allowed" and event.object_repr == "tp-new"
    assert event.actor == "" and body["join_token"] not in str(event.summary)


def test_join_names_the_broker_when_configured(api, settings):
    settings.BERTH_AGENT_BROKER_URL = "rediss://agents@berth:6380/0"
    response = join(enrol(api)["join_token"])
    assert response.json()["broker_url"] == "rediss://agents@berth:6380/0"


def test_a_join_token_works_once(api):
    body = enrol(api)
    first_key = new_key()
    assert join(body["join_token"], first_key).status_code == 200
    response = join(body["join_token"])
    assert response.status_code == 409
    assert message(response) == "this join token was used already"
    assert Host.objects.get(name="tp-new").public_key == first_key
    assert last_event("host.join").outcome == "denied"


def test_two_racing_joins_only_one_claims_the_token(api):
    """Both read the token as unused; the conditional UPDATE lets exactly one of them through."""
    enrol(api)
    seen_by_a = JoinToken.objects.get(host__name="tp-new")
    seen_by_b = JoinToken.objects.get(host__name="tp-new")
    now = timezone.now()
    assert joining.claim(seen_by_a, now) is True
    assert joining.claim(seen_by_b, now) is False


def test_a_join_that_loses_the_race_changes_nothing(api, monkeypatch):
    body = enrol(api)
    real_claim = joining.claim

    def lose(row, now):
        real_claim(row, now)  # the other join got there first
        return real_claim(row, now)

    monkeypatch.setattr(joining, "claim", lose)
    response = join(body["join_token"])
    assert response.status_code == 409 and message(response) == "this join token was used already"
    host = Host.objects.get(name="tp-new")
    assert host.public_key == "" and host.state == "pending"


def test_expired_unknown_and_removed_tokens_are_refused(api):
    body = enrol(api)
    past = timezone.now() - timedelta(minutes=5)
    JoinToken.objects.filter(host__name="tp-new").update(expires_at=past)
    response = join(body["join_token"])
    assert response.status_code == 403
    assert message(response) == f"this join token expired at {past.isoformat(timespec='seconds')}"
    assert last_event("host.join").reason.startswith("this join token expired")
    response = join("berth_join_" + "x" * 43)
    assert response.status_code == 403 and message(response) == "unknown join token"
    other = enrol(api, "tp-gone")
    api("admin").delete(f"/api/v1/hosts/{other['id']}/")
    response = join(other["join_token"])
    assert response.status_code in (403, 409)
    assert Host.objects.get(name="tp-gone").public_key == ""


def test_a_clock_off_by_minutes_is_refused_naming_the_skew(api, settings):
    settings.BERTH_CHANNEL_SKEW_SECONDS = 30
    body = enrol(api)
    response = join(body["join_token"], agent_time=time.time() + 312)
    assert response.status_code == 400
    assert message(response) == (
        "this machine's clock is 312 s ahead of the control plane's; "
        "fix its time (NTP) and join again"
    )
    response = join(body["join_token"], agent_time=time.time() - 600)
    assert "600 s behind" in message(response)
    # Nothing changed: the token still works once the clock is right.
    assert JoinToken.objects.get(host__name="tp-new").used_at is None
    assert join(body["join_token"]).status_code == 200


def test_a_malformed_public_key_is_refused(api):
    body = enrol(api)
    for bad in (
        "not base64!",
        "AAAA",
        keys.encode_public(Ed25519PrivateKey.generate().public_key())[:-4],
    ):
        response = join(body["join_token"], bad)
        assert response.status_code == 400, bad
        assert "Ed25519" in message(response)
    assert JoinToken.objects.get(host__name="tp-new").used_at is None


def test_a_key_of_another_host_is_refused(api):
    first = enrol(api, "tp-one")
    second = enrol(api, "tp-two")
    key = new_key()
    assert join(first["join_token"], key).status_code == 200
    response = join(second["join_token"], key)
    assert response.status_code == 409 and "tp-one" in message(response)


GARBAGE = [
    ("not json", "application/json"),
    ("[1, 2, 3]", "application/json"),
    ("null", "application/json"),
    ('"token"', "application/json"),
    ('{"token": 1, "public_key": [], "agent_time": "now"}', "application/json"),
    ('{"token": "t", "public_key": "k", "agent_time": true}', "application/json"),
    ('{"token": "t", "public_key": "k", "agent_time": 1e400}', "application/json"),
    ('{"token": "t", "public_key": "k", "agent_time": -5}', "application/json"),
    ('{"token": "t", "public_key": "k", "agent_time": 1, "host": "x"}', "application/json"),
    ('{"token": "' + "a" * 100000 + '", "public_key": "k", "agent_time": 1}', "application/json"),
    ('{"token": "t", "public_key": "' + "A" * 5000 + '", "agent_time": 1}', "application/json"),
    ("token=a&public_key=b&agent_time=1", "application/x-www-form-urlencoded"),
    ("\x00\xff\xfe", "application/json"),
    ("", "application/json"),
]


@pytest.mark.parametrize(("raw", "content_type"), GARBAGE, ids=range(len(GARBAGE)))
def test_the_join_endpoint_never_answers_500_on_garbage(db, raw, content_type):
    before = AuditEvent.objects.count()
    response = APIClient().generic("POST", JOIN, raw.encode("utf-8", "surrogatepass"), content_type)
    assert 400 <= response.status_code < 500, response.content[:300]
    assert response.json()["error"]["message"]
    assert not Host.objects.exclude(public_key="").exists()
    if response.status_code == 400 and content_type == "application/json":
        assert AuditEvent.objects.count() > before  # recorded as a denied host.join


def test_join_attempts_are_rate_limited_per_address(db, settings):
    settings.BERTH_JOIN_RATE = "3/min"
    codes = [join("berth_join_nope").status_code for _ in range(4)]
    assert codes == [403, 403, 403, 429]
    assert last_event("host.join").reason == "too many join attempts from this address"


def test_join_needs_no_csrf_token_and_ignores_sessions(api, users):
    body = enrol(api)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(users["rando"])
    payload = {"token": body["join_token"], "public_key": new_key(), "agent_time": time.time()}
    assert client.post(JOIN, payload, format="json").status_code == 200


# -- heartbeats -------------------------------------------------------------------------------


def test_heartbeats_create_no_host_and_do_not_revive_removed_or_pending_ones(db, api):
    heartbeat.beat("tp-stranger", info={"kernel": "x"})
    assert not Host.objects.filter(name="tp-stranger").exists()
    enrol(api)
    heartbeat.beat("tp-new")
    assert Host.objects.get(name="tp-new").state == "pending"
    gone = Host.objects.create(name="tp-gone", state="down", revoked_at=timezone.now())
    heartbeat.beat(gone.name)
    gone.refresh_from_db()
    assert gone.state == "down" and gone.last_heartbeat is None


def test_host_info_reports_free_memory():
    info = heartbeat.host_info(lambda: (_ for _ in ()).throw(RuntimeError("no runtime")))
    assert isinstance(info["mem_available"], int) and info["mem_available"] > 0


# -- cordon -----------------------------------------------------------------------------------


def create_body(team="tp-alpha", host=None, name="tp-c"):
    body = {"team": team, "spec": {"image": "busybox", "name": name}}
    if host is not None:
        body["host"] = host
    return body


def test_cordon_keeps_containers_and_refuses_new_ones(api, host, teams):
    running = make_container(teams["alpha"], host, "tp-running", observed_state="running")
    admin = api("admin")
    response = admin.post(f"/api/v1/hosts/{host.pk}/cordon/")
    assert response.status_code == 200 and response.json()["cordoned"] is True
    assert last_event("host.change").outcome == "allowed"
    running.refresh_from_db()
    assert running.observed_state == "running"
    response = admin.post("/api/v1/containers/", create_body(host=host.name), format="json")
    assert response.status_code == 409
    assert message(response) == f"host {host.name} is cordoned; it takes no new containers"
    assert last_event("container.create").outcome == "failed"
    assert not Container.objects.filter(name="tp-c").exists()
    assert admin.post(f"/api/v1/hosts/{host.pk}/uncordon/").json()["cordoned"] is False
    response = admin.post("/api/v1/containers/", create_body(host=host.name), format="json")
    assert response.status_code == 202, response.json()


def test_a_developer_cannot_cordon_or_remove(api, host):
    dev = api("developer")
    assert dev.post(f"/api/v1/hosts/{host.pk}/cordon/").status_code == 403
    assert last_event("host.change").outcome == "denied"
    assert dev.delete(f"/api/v1/hosts/{host.pk}/").status_code == 403
    assert last_event("host.delete").outcome == "denied"
    host.refresh_from_db()
    assert not host.cordoned and host.revoked_at is None


# -- remove -----------------------------------------------------------------------------------


def test_remove_is_refused_while_containers_run_unless_forced(api, host, teams):
    c = make_container(teams["alpha"], host, "tp-live", observed_state="running")
    admin = api("admin")
    response = admin.delete(f"/api/v1/hosts/{host.pk}/")
    assert response.status_code == 409 and "tp-live" in message(response)
    assert "?force=1" in message(response)
    host.refresh_from_db()
    assert host.revoked_at is None
    response = admin.delete(f"/api/v1/hosts/{host.pk}/?force=1")
    assert response.status_code == 200, response.json()
    host.refresh_from_db()
    assert host.revoked_at is not None and host.state == "down"
    c.refresh_from_db()
    assert c.observed_state == "removed" and "removed" in c.error  # the row stays
    event = last_event("host.delete")
    assert event.outcome == "allowed" and event.summary["force"] is True
    # Its key is revoked: nothing is sent to it any more, and its heartbeats change nothing.
    with pytest.raises(Unavailable):
        dispatch.send_signed("agent.heartbeat", host, [host.name])
    heartbeat.beat(host.name)
    host.refresh_from_db()
    assert host.state == "down"
    assert admin.delete(f"/api/v1/hosts/{host.pk}/").status_code == 409
    assert admin.post(f"/api/v1/hosts/{host.pk}/cordon/").status_code == 409


def test_remove_an_idle_host(api, host):
    assert api("admin").delete(f"/api/v1/hosts/{host.pk}/").status_code == 200
    host.refresh_from_db()
    assert host.revoked_at is not None


# -- placement --------------------------------------------------------------------------------


@pytest.fixture
def fleet(host, teams):
    """tp-h1 (from the fixture) and three more up hosts with memory reports."""
    gib = 1024**3
    Host.objects.filter(pk=host.pk).update(info={"mem_available": 2 * gib})
    rows = {"h1": Host.objects.get(pk=host.pk)}
    for name, mem in (("h2", 8 * gib), ("h3", 4 * gib), ("h4", 1 * gib)):
        rows[name] = Host.objects.create(
            name=f"tp-{name}",
            state="up",
            last_heartbeat=timezone.now(),
            info={"mem_available": mem},
        )
    return rows


def test_placement_prefers_free_memory_per_container(users, teams, fleet):
    admin, alpha = users["admin"], teams["alpha"]
    assert placement.choose(admin, alpha) == fleet["h2"]  # 8 GiB, no containers
    for i in range(3):  # 8 GiB / 4 = 2 GiB per container: h3 (4 GiB / 1) wins now
        make_container(alpha, fleet["h2"], f"tp-load-{i}", desired_state="running")
    assert placement.choose(admin, alpha) == fleet["h3"]


def test_placement_skips_cordoned_down_removed_and_pending_hosts(users, teams, fleet):
    admin, alpha = users["admin"], teams["alpha"]
    Host.objects.filter(pk=fleet["h2"].pk).update(cordoned=True)
    assert placement.choose(admin, alpha) == fleet["h3"]
    Host.objects.filter(pk=fleet["h3"].pk).update(state="down")
    assert placement.choose(admin, alpha) == fleet["h1"]
    Host.objects.filter(pk=fleet["h1"].pk).update(revoked_at=timezone.now())
    stale = timezone.now() - timedelta(minutes=5)
    Host.objects.filter(pk=fleet["h4"].pk).update(last_heartbeat=stale)  # its agent died
    Host.objects.create(name="tp-h5", state="pending", info={"mem_available": 64 * 1024**3})
    with pytest.raises(Exception, match="no host can take a container"):
        placement.choose(admin, alpha)


def test_a_host_scoped_binding_limits_the_choice(users, teams, fleet):
    from accounts.models import User

    hostdev = User.objects.create_user(username="tp-hostdev")
    RoleBinding.objects.create(
        user=hostdev, role=Role.objects.get(name="developer"), scope_host=fleet["h4"]
    )
    assert placement.choose(hostdev, teams["alpha"]) == fleet["h4"]  # the only one it may use
    # A team-scoped developer may use every host for its own team, not for another team.
    assert placement.choose(users["developer"], teams["alpha"]) == fleet["h2"]
    with pytest.raises(Exception, match="no host can take"):
        placement.choose(users["developer"], teams["beta"])


def test_create_without_a_host_is_placed(api, fleet):
    response = api("developer").post("/api/v1/containers/", create_body(), format="json")
    assert response.status_code == 202, response.json()
    assert Container.objects.get(name="tp-c").host == fleet["h2"]


def test_naming_a_host_that_cannot_take_containers_is_a_clear_409(api, host, fleet):
    admin = api("admin")
    Host.objects.filter(pk=fleet["h2"].pk).update(state="down")
    Host.objects.filter(pk=fleet["h3"].pk).update(revoked_at=timezone.now())
    Host.objects.create(name="tp-h6", state="pending")
    expected = {
        "tp-h2": "host tp-h2 is down",
        "tp-h3": "host tp-h3 was removed",
        "tp-h6": "host tp-h6 has not joined yet",
    }
    for name, start in expected.items():
        response = admin.post("/api/v1/containers/", create_body(host=name), format="json")
        assert response.status_code == 409, name
        assert message(response).startswith(start), message(response)
    assert not Container.objects.filter(name="tp-c").exists()


def test_check_accepts_raises_conflict(host):
    Host.objects.filter(pk=host.pk).update(cordoned=True)
    host.refresh_from_db()
    with pytest.raises(Conflict, match="cordoned"):
        placement.check_accepts(host)
