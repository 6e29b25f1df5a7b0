"""The fork server makes containers for a big caller: same results, same errors, no leftovers."""

import os

import pytest

from runtime.errors import NotFound
from runtime.forkserver import Client, LeanRuntime, ServerDied

pytestmark = pytest.mark.root


@pytest.fixture
def lean(rt):
    """A LeanRuntime over the test's Runtime; its server is stopped after the test."""
    wrapped = LeanRuntime(rt)
    yield wrapped
    wrapped._client._drop()


def test_run_create_start_in_the_server(lean, rt, base_spec):
    running = lean.run(base_spec)
    assert running["status"] == "running"
    assert rt.state(running["id"])["status"] == "running"  # the caller sees the same state
    created = lean.create(dict(base_spec, name="fs-created"))
    assert created["status"] == "created"
    assert lean.start(created["id"])["status"] == "running"
    assert lean.state(created["id"])["status"] == "running"  # other verbs run in-process


def test_runtime_errors_keep_their_class(lean, base_spec):
    with pytest.raises(NotFound, match="no such image"):
        lean.run(dict(base_spec, image="no-such-image"))
    with pytest.raises(NotFound):
        lean.start("f" * 64)


def test_a_dead_server_is_an_error_then_replaced(lean, base_spec):
    lean.run(base_spec)
    server = lean._client.proc
    server.kill()
    server.wait()
    with pytest.raises(ServerDied):
        lean.run(dict(base_spec, name="fs-after-death"))
    assert lean.run(dict(base_spec, name="fs-again"))["status"] == "running"
    assert lean._client.proc.pid != server.pid


def test_the_server_exits_when_its_caller_closes(rt):
    client = Client(rt.config)
    with pytest.raises(NotFound):
        client.call("start", "f" * 64)
    proc = client.proc
    client.sock.close()
    client.stream.close()
    assert proc.wait(10) == 0
    assert not os.path.exists(f"/proc/{proc.pid}/status") or proc.returncode is not None
