"""Where a rebuild finds its context (compliance/recipes.py, agent/remote_files.py): the web's
own keep is copied as an upload; a context the web does not keep (recorded by a host with a
data directory of its own) is named by its digest and restored by that host's agent from its
keep, or refused clearly when it was pruned. The two-host case end to end is
tests/fleet/test_remote_files.py::test_compliance_rebuild_of_an_image_built_on_the_joined_host."""

import hashlib

import pytest
from agent import control_client, remote_files
from django.test import override_settings

from compliance import recipes
from compliance.models import BuildRecipe

pytestmark = pytest.mark.django_db

CONTEXT = b"a context tar, as far as this test cares"
DIGEST = "sha256:" + hashlib.sha256(CONTEXT).hexdigest()


def _recipe(host, team):
    return BuildRecipe.objects.create(
        host=host, team=team, image_id="sha256:" + "1" * 64, tag="keep/app:1", context_digest=DIGEST
    )


def _build_upload(recipe, user):
    [build] = recipes.rebuild_operations(recipe, user)
    assert build.kind == "image.build"
    return recipes.Path(build.params["path"])


def test_the_webs_keep_is_copied_else_the_host_restores_its_own(tmp_path, host, teams, users):
    recipe, user = _recipe(host, teams["alpha"]), users["developer"]
    with override_settings(UPLOAD_DIR=tmp_path / "uploads"):
        # The web keeps it (a host sharing its data directory recorded it): a copy.
        kept = recipes.context_path(recipe)
        kept.parent.mkdir(parents=True)
        kept.write_bytes(CONTEXT)
        copied = _build_upload(recipe, user)
        assert copied.name.startswith("context-") and copied.read_bytes() == CONTEXT
        assert recipes.kept_for_upload(copied.name) is None
        copied.unlink()

        # Not kept by the web: the upload names the digest, nothing is written on the web's side.
        kept.unlink()
        named = _build_upload(recipe, user)
        assert not named.exists() and recipes.kept_for_upload(named.name) == kept

        # The host that keeps it (here the same directory) restores it without asking the web.
        kept.write_bytes(CONTEXT)
        assert remote_files.fetch(named, operation=0) == named
        assert named.read_bytes() == CONTEXT
        assert sorted(p.name for p in named.parent.iterdir()) == sorted(["recipes", named.name])

        # Pruned there too: a clear refusal, no partial file.
        named.unlink()
        kept.unlink()
        with pytest.raises(control_client.ControlPlaneError, match="no longer kept"):
            remote_files.fetch(named, operation=0)
        assert sorted(p.name for p in named.parent.iterdir()) == ["recipes"]
