"""CRIU's kernel-probe cache: after criu_probes.keep, CRIU loads it instead of probing again."""

import os
import subprocess

import pytest

from runtime.container import criu, criu_probes
from tests.criu_support import criu_problem

_PROBLEM = criu_problem()
pytestmark = [pytest.mark.root, pytest.mark.skipif(bool(_PROBLEM), reason=_PROBLEM or "")]


def _loads_cache(program: str, log) -> bool:
    subprocess.run([program, "check", "-v4", "-o", str(log)], capture_output=True, timeout=60)
    return "Loaded kdat cache" in log.read_text()


def test_criu_loads_its_probe_cache_after_keep(tmp_path):
    program = criu.binary()
    assert criu_probes.keep(program)
    assert _loads_cache(program, tmp_path / "check.log")
    # On a host whose /run is on disk (this one), the cache is a one-file tmpfs of its own,
    # so that it is gone after a reboot, as CRIU wants.
    assert criu_probes._fstype_at(criu_probes.CACHE) == "tmpfs"


def test_a_stale_cache_is_filled_again_once_per_binary(tmp_path):
    program = criu.binary()
    if criu_probes._cache_mount() != "bound":
        pytest.skip("/run is a tmpfs here: CRIU keeps the cache itself")
    with open(criu_probes.CACHE, "wb"):
        pass  # what a CRIU upgrade amounts to: a cache it cannot use
    assert not _loads_cache(program, tmp_path / "stale.log")
    marker = tmp_path / "kept"  # none yet: as for a binary this boot has not seen
    assert criu_probes.keep(program, marker)
    assert marker.exists()
    assert _loads_cache(program, tmp_path / "fresh.log")
    # With the marker, a later process neither probes nor rewrites the cache.
    before = os.stat(criu_probes.CACHE).st_mtime_ns
    assert criu_probes.keep(program, marker)
    assert os.stat(criu_probes.CACHE).st_mtime_ns == before
    # Kept once, never stacked: one mount at the cache's path.
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if " /run/criu.kdat " in line]
    assert points == [criu_probes.CACHE]
