"""The control channel as an attacker with access to Redis sees it (issue 9).

The test writes Celery messages straight into the host's queue, as the reported attack did:
unsigned, forged, replayed, for another host, with an expired decision, with arguments changed
after signing, and to a removed host. Each is refused before the runtime is touched (the exec
would leave a file in the container; it never appears) and each is in the audit log as failed.
A message signed by the control plane for this host, this object and this decision still works.
"""

import time
import uuid

import pytest
from celery import Celery
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from trust import envelope, keys

pytestmark = [pytest.mark.e2e, pytest.mark.root]

EXEC = "agent.container_exec"


@pytest.fixture(scope="module")
def attacker(web):
    """A Celery client on the stack's Redis: what anyone who reaches Redis can do."""
    app = Celery("attacker", broker=web.env["REDIS_URL"], backend=web.env["REDIS_URL"])
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    yield app
    app.close()


@pytest.fixture(scope="module")
def target(web):
    """Another team's container that runs as uid 1000."""
    body = {
        "team": web.team,
        "host": web.host,
        "spec": {
            "image": "busybox",
            "name": "chan-target",
            "user": "1000",
            "command": ["sleep", "1000"],
            "network": {"mode": "none"},
        },
    }
    status, out = web.api("POST", "containers/?wait=60", body)
    assert status == 200 and out["container"]["observed_state"] == "running", out
    yield out["container"]
    web.api("DELETE", f"containers/{out['container']['id']}/?wait=60&force=1")


def control_key(web):
    """The control plane's signing key, read from the stack's data directory (we are root)."""
    return keys.decode_private((web.data_dir / "keys" / "control.key").read_text())


def decision(container_id, *, expires_in=60.0, root_allowed=True):
    return {
        "user": 1,
        "username": "admin",
        "action": "container.exec",
        "object": container_id,
        "root_allowed": root_allowed,
        "expires": time.time() + expires_in,
    }


def send(attacker, web, args, env, task=EXEC, timeout=20):
    """Send one raw message to the stack's host queue; returns (ok, result or error text)."""
    kwargs = {} if env is None else {"envelope": env}
    result = attacker.send_task(task, args=args, kwargs=kwargs, queue=f"host.{web.host}")
    try:
        return True, result.get(timeout=timeout)
    except Exception as err:
        return False, f"{type(err).__name__}: {err}"


def marker_exists(web, container, name):
    """Whether /tmp/<name> exists in the container (looked at through the runtime directly)."""
    code, output = web.runtime().exec(container["runtime_id"], ["ls", "/tmp"])
    assert code == 0, output
    return name in output.decode().split()


def refusals(web, since_id):
    return web.sql(
        "SELECT reason FROM audit_auditevent WHERE action = 'agent.message' "
        "AND outcome = 'failed' AND id > ? ORDER BY id",
        since_id,
    )


def last_event_id(web):
    return web.sql("SELECT coalesce(max(id), 0) FROM audit_auditevent")[0][0]


def _attack(web, attacker, target, make_envelope, expect_reason, args=None):
    name = "pwned-" + uuid.uuid4().hex[:8]
    args = args or [target["id"], {"command": ["touch", f"/tmp/{name}"], "user": "0"}]
    before = last_event_id(web)
    ok, answer = send(attacker, web, args, make_envelope(args))
    assert not ok, f"the agent ran it: {answer}"
    assert not marker_exists(web, target, name), "the runtime was reached"
    reasons = [r for (r,) in refusals(web, before)]
    assert any(expect_reason in r for r in reasons), reasons


def test_unsigned_message_is_refused(web, attacker, target):
    _attack(web, attacker, target, lambda args: None, "unsigned message")


def signer(web, target, *, key=None, host=None, args=None, seal=None, **decision_kw):
    """A function args -> envelope, signed as the control plane would, with one thing changed:
    another key, another host, other arguments than those sent, a decision or time of its own."""

    object_id = decision_kw.pop("object", target["id"])

    def make(sent_args):
        return envelope.seal(
            key or control_key(web),
            task=EXEC,
            host=host or web.host,
            args=args or sent_args,
            decision=decision(object_id, **decision_kw),
            **(seal or {}),
        )

    return make


CASES = {
    "another key": ({"key": Ed25519PrivateKey.generate()}, "unknown or revoked key"),
    "another host": ({"host": "elsewhere"}, "not this host"),
    "arguments swapped": (
        {"args": "harmless"},
        "not the ones that were signed",
    ),
    "decision expired": ({"expires_in": -600}, "decision behind agent.container_exec expired"),
    "message expired": ({"seal": {"now": time.time() - 3600}}, "expired"),
    "decision for another object": (
        {"object": 999999},
        "decision behind agent.container_exec is for another object",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_signed_message_with_one_thing_wrong_is_refused(web, attacker, target, case):
    changes, reason = CASES[case]
    if changes.get("args") == "harmless":
        changes = {"args": [target["id"], {"command": ["true"], "user": "1000"}]}
    _attack(web, attacker, target, signer(web, target, **changes), reason)


def test_forged_signature_is_refused(web, attacker, target):
    def forged(args):
        env = signer(web, target)(args)
        env["body"]["decision"]["root_allowed"] = True  # changed after signing
        env["body"]["decision"]["username"] = "someone-else"
        return env

    _attack(web, attacker, target, forged, "forged or damaged signature")


def test_signed_call_works_once_and_its_replay_is_refused(web, attacker, target):
    args = [target["id"], {"command": ["id", "-u"], "user": "1000"}]
    env = signer(web, target)(args)
    ok, answer = send(attacker, web, args, env)
    assert ok and answer["output"].strip() == "1000", answer
    before = last_event_id(web)
    ok, answer = send(attacker, web, args, env)
    assert not ok
    assert any("replayed" in r for (r,) in refusals(web, before))


def test_root_is_the_decisions_word_not_the_params(web, attacker, target):
    # A validly signed decision that does not allow root: params saying otherwise change nothing.
    args = [target["id"], {"command": ["id", "-u"], "user": "0", "root_allowed": True}]
    env = signer(web, target, root_allowed=False)(args)
    ok, answer = send(attacker, web, args, env)
    assert not ok and "container.exec_root" in answer, answer


def test_removed_host_refuses_even_signed_messages(web, attacker, target):
    web.sql_write("UPDATE hosts_host SET revoked_at = CURRENT_TIMESTAMP WHERE name = ?", web.host)
    try:
        _attack(web, attacker, target, signer(web, target), "was removed: its key is revoked")
    finally:
        web.sql_write("UPDATE hosts_host SET revoked_at = NULL WHERE name = ?", web.host)


def test_remote_control_broadcasts_are_not_obeyed(web, attacker, target):
    # Celery's remote control (pidbox) would let anyone on Redis stop every agent or point one
    # at another host's queue; the agents do not listen to it.
    attacker.control.broadcast("add_consumer", arguments={"queue": "host.someone-else"})
    attacker.control.broadcast("shutdown")
    time.sleep(2)
    assert web.worker is not None and web.worker.poll() is None, "the agent obeyed a shutdown"
    args = [target["id"], {"command": ["true"], "user": "1000"}]
    ok, answer = send(attacker, web, args, signer(web, target)(args))
    assert ok and answer["exit_code"] == 0, answer
