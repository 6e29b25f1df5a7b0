"""The Docker API listener's pieces that need no stack: detach keys, path split, bind check."""

import pytest
from dockerapi.errors import DockerError
from dockerapi.hijack import is_hijack, parse_detach_keys
from dockerapi.hijack_relay import DetachWatcher
from dockerapi.listener import check_bind, split_path


def test_detach_keys_in_dockers_syntax():
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-@,a,ctrl-[") == b"\x00a\x1b"
    for bad in ("ctrl-", "ctrl-1", "abc", ""):
        with pytest.raises(DockerError) as err:
            parse_detach_keys(bad)
        assert err.value.status == 400 and "detach keys" in err.value.message


def test_the_watcher_passes_everything_but_the_sequence():
    watcher = DetachWatcher(b"\x10\x11")
    assert watcher.feed(b"ls\r") == (b"ls\r", False)
    # The first key alone is held back, then passed on when the second does not follow.
    assert watcher.feed(b"\x10") == (b"", False)
    assert watcher.feed(b"x") == (b"\x10x", False)
    # Split across reads, and after other input in the same read.
    assert watcher.feed(b"echo\x10") == (b"echo", False)
    assert watcher.feed(b"\x11rest") == (b"", True)
    assert watcher.feed(b"\x10\x10\x11") == (b"\x10", True)
    assert DetachWatcher(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


def test_only_attach_and_exec_start_are_upgraded():
    assert is_hijack("POST", "containers/web/attach")
    assert is_hijack("POST", "exec/abc/start")
    assert not is_hijack("GET", "containers/web/attach")
    assert not is_hijack("POST", "containers/web/start")
    assert split_path("/v1.47/containers/x/attach") == ("1.47", "containers/x/attach")
    assert split_path("/_ping") == (None, "_ping")


def test_the_listener_stays_on_loopback():
    check_bind("127.0.0.1")
    check_bind("::1")
    check_bind("localhost")
    for address in ("0.0.0.0", "10.1.2.3", "example.org"):
        with pytest.raises(ValueError, match="unencrypted"):
            check_bind(address)
