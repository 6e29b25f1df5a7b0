"""A newer digest under a pulled tag is detected: the host asks the registry (a real
docker-registry on 127.0.0.1) for the tag's manifest and compares it with the image's own."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from agent import inventory_ops

from images.models import Image
from operations.models import Operation
from runtime.config import RuntimeConfig
from runtime.images import ImageStore
from runtime.registry import pull

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "registry"))  # registry_helpers, as tests/registry imports it
from registry_helpers import REGISTRY_BIN, SKOPEO, make_oci_layout, skopeo  # noqa: E402


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


registry = _load("tc_registry_conftest", TESTS / "registry" / "conftest.py").registry

pytestmark = pytest.mark.skipif(
    REGISTRY_BIN is None or SKOPEO is None, reason="apt-get install docker-registry skopeo"
)


def _push(tmp_path, target, content: bytes):
    layout = tmp_path / content.decode()[:8]
    info = make_oci_layout(layout, [{"version": content}])
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{target}")
    return info


def test_newer_digest_under_the_tag_is_detected(tmp_path, registry, host, api):
    ref = f"{registry.host}/tc/checked:1"
    first = _push(tmp_path, ref, b"version1")
    store = ImageStore(RuntimeConfig(root=tmp_path / "s", run_root=tmp_path / "r", prefix="tcchk"))
    pulled = pull(store, ref)
    assert pulled.digest == first["manifest_digest"]
    row = Image.objects.create(host=host, image_id=pulled.image.id, repo_tags=[ref])
    rt = SimpleNamespace(images=store)

    def check():
        op = Operation.objects.create(
            kind="rollout.check", target_type="image", target_id=str(row.pk), host=host
        )
        return inventory_ops.rollout_check(rt, op)

    same = check()
    assert same["newer"] is False and same["remote"] == same["local"] == first["manifest_digest"]
    second = _push(tmp_path, ref, b"version2")
    changed = check()
    assert changed["newer"] is True and changed["remote"] == second["manifest_digest"]

    # Through the API the check is an operation on the image's host (image.pull decides it).
    assert (
        api("viewer")
        .post("/api/v1/compliance/rollouts/check/", {"image": row.pk}, format="json")
        .status_code
        == 403
    )
    response = api("admin").post(
        "/api/v1/compliance/rollouts/check/", {"image": row.pk}, format="json"
    )
    assert response.status_code == 202, response.content
    op = Operation.objects.get(pk=response.json()["operation"]["id"])
    assert op.kind == "rollout.check" and op.target_id == str(row.pk)
