"""Runtime.rename: idempotent, refuses taken and invalid names, frees the old name."""

import pytest

from runtime.errors import Conflict, InvalidSpec, NotFound

pytestmark = pytest.mark.root


def test_rename_moves_the_name(rt, base_spec):
    cid = rt.create(dict(base_spec, name="rn-old"))["id"]
    rt.create(dict(base_spec, name="rn-taken"))
    assert rt.rename("rn-old", "rn-new")["name"] == "rn-new"
    assert rt.rename(cid, "rn-new")["name"] == "rn-new"  # a retry changes nothing
    assert rt.state("rn-new")["id"] == cid
    with pytest.raises(NotFound):
        rt.state("rn-old")
    with pytest.raises(Conflict):
        rt.rename(cid, "rn-taken")
    with pytest.raises(InvalidSpec):
        rt.rename(cid, "-bad")
    assert rt.state(cid)["name"] == "rn-new"
    # The old name is free for a new container.
    other = rt.create(dict(base_spec, name="rn-old"))
    assert other["id"] != cid
    rt.start("rn-new")
    assert rt.state("rn-new")["status"] == "running"


def test_reconcile_frees_the_extra_name_of_a_killed_rename(rt, base_spec):
    cid = rt.create(dict(base_spec, name="rk-name"))["id"]
    rt.store.reserve_name("rk-half", cid)  # as a rename killed before its record was written
    rt.reconcile()
    assert rt.store.name_owner("rk-half") is None
    assert rt.state("rk-name")["id"] == cid
