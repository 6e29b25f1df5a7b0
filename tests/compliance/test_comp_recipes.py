"""Build recipes: a build by the host agent records its context (kept by digest), Dockerfile
and base image digests; a newer base under the FROM tag (a real docker-registry on
127.0.0.1) is detected; the rebuild pulls it and builds the kept context under the same tag.
The agent's handlers run in this process on a real image store and builder."""

import importlib.util
import io
import sys
import tarfile
from pathlib import Path

import pytest
from agent import image_ops, inventory_ops
from django.test import override_settings

from compliance import recipes
from compliance.models import BuildRecipe
from operations.models import Operation
from runtime.api import Runtime
from runtime.config import RuntimeConfig

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "registry"))  # registry_helpers, as tests/registry imports it
from registry_helpers import REGISTRY_BIN, SKOPEO, make_oci_layout, skopeo  # noqa: E402

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        REGISTRY_BIN is None or SKOPEO is None, reason="apt-get install docker-registry skopeo"
    ),
]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


registry = _load("tc_recipes_registry", TESTS / "registry" / "conftest.py").registry


def _push(tmp_path, target, content: bytes) -> dict:
    layout = tmp_path / content.decode()[:8]
    info = make_oci_layout(layout, [{"version": content}])
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{target}")
    return info


def _context(uploads: Path, base: str) -> Path:
    files = {"Dockerfile": f"FROM {base}\nCOPY app /app\n".encode(), "app": b"tc app\n"}
    path = uploads / "context-tc.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _run(rt, op):
    return image_ops.HANDLERS.get(op.kind, inventory_ops.HANDLERS.get(op.kind))(rt, op)


def test_recipe_recorded_newer_base_detected_and_rebuilt(
    tmp_path, registry, host, teams, users, api
):
    base = f"{registry.host}/tc/base:1"
    first = _push(tmp_path, base, b"base-v1!")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    rt = Runtime(RuntimeConfig(root=tmp_path / "s", run_root=tmp_path / "r", prefix="tcrcp"))
    developer, alpha = users["developer"], teams["alpha"]
    with override_settings(UPLOAD_DIR=uploads):
        context = _context(uploads, base)
        op = Operation.objects.create(
            kind="image.build",
            target_type="image",
            host=host,
            team=alpha,
            created_by=developer,
            params={"path": str(context), "tag": "tc-app:1", "private": True},
        )
        built = _run(rt, op)
        recipe = BuildRecipe.objects.get(pk=built["recipe"])
        assert not context.exists()  # the upload went, a copy is kept by digest
        kept = recipes.context_path(recipe)
        assert kept.is_file() and recipes._digest(kept) == recipe.context_digest
        assert (recipe.tag, recipe.team, recipe.image_id) == ("tc-app:1", alpha, built["image_id"])
        assert recipe.bases == [
            {
                "ref": base,
                "image_id": recipe.bases[0]["image_id"],
                "digest": first["manifest_digest"],
            }
        ]

        def check():
            op = recipes.check_operation(recipe, developer)
            return recipes.save_check(recipe, _run(rt, op))

        assert check().base_newer is False
        second = _push(tmp_path, base, b"base-v2!")
        checked = check()
        assert checked.base_newer is True
        assert checked.check_result["bases"][0]["remote"] == second["manifest_digest"]

        ops = recipes.rebuild_operations(recipe, developer)
        assert [o.kind for o in ops] == ["image.pull", "image.build"]
        results = [_run(rt, o) for o in ops]
        new_id = results[-1]["image_id"]
        assert new_id != built["image_id"] and rt.images.resolve("tc-app:1").id == new_id
        again = BuildRecipe.objects.get(pk=results[-1]["recipe"])
        assert again.bases[0]["digest"] == second["manifest_digest"]
        assert again.context_digest == recipe.context_digest  # the same context, kept once

    # The API: the team's developer sees the recipes; a viewer may not check a base.
    listed = api("developer").get("/api/v1/compliance/recipes/").json()
    assert {r["id"] for r in listed["results"]} == {recipe.pk, again.pk}
    assert api("viewer").post(f"/api/v1/compliance/recipes/{recipe.pk}/check/").status_code == 403
    assert api("viewer").post(f"/api/v1/compliance/recipes/{recipe.pk}/rebuild/").status_code == 403
