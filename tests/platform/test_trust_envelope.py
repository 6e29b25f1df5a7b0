"""The signed envelope on its own: what it vouches for and every way it is refused."""

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from trust import envelope, keys
from trust.envelope import Refused

KEY = Ed25519PrivateKey.generate()
PUBLIC = keys.encode_public(KEY.public_key())
TRUSTED = {keys.key_id(PUBLIC): PUBLIC}
ARGS = [7, {"command": ["id"]}]


def sealed(**overrides):
    fields = {"task": "agent.container_exec", "host": "h1", "args": ARGS}
    fields.update(overrides)
    return envelope.seal(KEY, **fields)


def opened(env, **overrides):
    fields = {"task": "agent.container_exec", "host": "h1", "args": ARGS}
    fields.update(overrides)
    return envelope.open_sealed(env, TRUSTED, **fields)


def test_a_sealed_message_opens_with_its_claims():
    claims = opened(sealed(decision={"action": "container.exec", "expires": time.time() + 5}))
    assert claims.host == "h1" and claims.task == "agent.container_exec"
    assert claims.decision["action"] == "container.exec"
    assert len(claims.nonce) == 32


def test_two_seals_of_one_message_have_different_nonces():
    assert sealed()["body"]["nonce"] != sealed()["body"]["nonce"]


@pytest.mark.parametrize(
    "env, overrides, reason",
    [
        (None, {}, "unsigned"),
        ({"body": "x"}, {}, "unsigned"),
        ("sealed", {"task": "agent.container_logs"}, "delivered as agent.container_logs"),
        ("sealed", {"host": "h2"}, "not this host 'h2'"),
        ("sealed", {"args": [8, {"command": ["id"]}]}, "not the ones that were signed"),
    ],
)
def test_refusals(env, overrides, reason):
    with pytest.raises(Refused, match=reason):
        opened(sealed() if env == "sealed" else env, **overrides)


def test_an_unknown_key_is_refused():
    other = Ed25519PrivateKey.generate()
    env = envelope.seal(other, task="agent.container_exec", host="h1", args=ARGS)
    with pytest.raises(Refused, match="unknown or revoked key"):
        opened(env)


def test_a_changed_body_breaks_the_signature():
    env = sealed()
    env["body"]["expires"] += 3600
    with pytest.raises(Refused, match="forged or damaged"):
        opened(env)


def test_a_clock_behind_is_named_with_its_skew():
    env = sealed(now=time.time() + 300)
    with pytest.raises(Refused, match=r"this host's clock is 30\d s behind"):
        opened(env)


def test_an_old_message_has_expired():
    with pytest.raises(Refused, match="expired"):
        opened(sealed(now=time.time() - 600, ttl=60))


def test_a_public_key_round_trips_and_garbage_is_refused():
    assert keys.encode_public(keys.decode_public(PUBLIC)) == PUBLIC
    with pytest.raises(ValueError):
        keys.decode_public("not base64!")


def test_the_control_key_file_is_private(settings, tmp_path):
    settings.BERTH_CONTROL_KEY_FILE = str(tmp_path / "keys" / "control.key")
    keys.control_private_key.cache_clear()
    try:
        public = keys.control_public_key()
        assert (tmp_path / "keys" / "control.key").stat().st_mode & 0o777 == 0o600
        keys.control_private_key.cache_clear()
        assert keys.control_public_key() == public  # read back, not made again
    finally:
        keys.control_private_key.cache_clear()
