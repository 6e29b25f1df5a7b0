"""References, challenges, TLS policy and platform choice: pure functions, no network."""

import pytest

from runtime.errors import InvalidSpec
from runtime.registry import media
from runtime.registry.auth import parse_challenge
from runtime.registry.errors import PlatformNotFound, RegistryError
from runtime.registry.reference import parse
from runtime.registry.transport import Transport, is_loopback

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repo", "tag", "digest", "name"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
        ("centos:7", "docker.io", "library/centos", "7", None, "centos"),
        ("user/app:1.0", "docker.io", "user/app", "1.0", None, "user/app"),
        ("docker.io/library/redis", "docker.io", "library/redis", "latest", None, "redis"),
        ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", "t", None, "127.0.0.1:5000/a/b"),
        ("localhost/x", "localhost", "x", "latest", None, "localhost/x"),
        (f"reg.example.com/x@{DIGEST}", "reg.example.com", "x", None, DIGEST, "reg.example.com/x"),
        (f"x:1@{DIGEST}", "docker.io", "library/x", "1", DIGEST, "x"),
    ],
)
def test_parse(text, registry, repo, tag, digest, name):
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.name) == (
        registry,
        repo,
        tag,
        digest,
        name,
    )


@pytest.mark.parametrize(
    "text", ["", "UPPER/case", "a@sha256:short", "a:b:c", "a/../b", " a", "a:" + "t" * 200]
)
def test_parse_refuses(text):
    with pytest.raises(InvalidSpec):
        parse(text)


def test_docker_hub_api_host():
    assert parse("busybox").api_host == "registry-1.docker.io"
    assert parse("busybox").tagged() == "busybox:latest"
    assert parse(f"busybox@{DIGEST}").tagged() is None


def test_parse_challenge():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull",
    }
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_plain_http_only_for_loopback_or_insecure():
    assert is_loopback("127.0.0.1:5000") and is_loopback("127.3.4.5") and is_loopback("localhost:1")
    assert is_loopback("[::1]:5000")
    assert not is_loopback("10.0.0.1:5000") and not is_loopback("registry.example.com")
    with pytest.raises(RegistryError, match="plain HTTP"):
        Transport("registry.example.com", scheme="http")
    assert Transport("registry.example.com").scheme == "https"  # no probe: TLS required
    Transport("10.1.2.3:5000", insecure=True, scheme="http")  # an admin's insecure switch


def test_select_platform():
    index = {
        "manifests": [
            {"digest": "a", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "b", "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    }
    assert media.select_platform(index, ("linux", "amd64"))["digest"] == "b"
    with pytest.raises(PlatformNotFound, match="linux/s390x"):
        media.select_platform(index, ("linux", "s390x"))


def test_schema1_refused():
    with pytest.raises(RegistryError, match="schema 1"):
        media.manifest_type(b'{"schemaVersion": 1, "name": "x"}', None)


def test_registry_that_times_out_is_a_clear_error():
    import socket
    import threading

    from runtime.registry import RegistryClient

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accept, then never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        client = RegistryClient(f"127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        with pytest.raises(RegistryError, match="timed out"):
            client.ping()
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
