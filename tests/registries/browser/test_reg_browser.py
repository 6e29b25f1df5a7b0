"""The pull form and its progress bars in headless Chromium, against a real registry and agent."""

import uuid

import pytest
from browser_helpers import shot
from registry_helpers import REGISTRY_BIN, SKOPEO, make_oci_layout, skopeo

pytestmark = [
    pytest.mark.browser,
    pytest.mark.root,
    pytest.mark.skipif(
        REGISTRY_BIN is None or SKOPEO is None, reason="apt-get install docker-registry skopeo"
    ),
]


def test_pull_from_the_dashboard_shows_a_bar_per_layer(stack, registry, page_for, tmp_path):
    layers = [{"one": b"1" * 100_000}, {"two": b"2" * 50_000}, {"three": b"3"}]
    info = make_oci_layout(tmp_path / "layout", layers)
    ref = f"{registry.host}/tr/browser-{uuid.uuid4().hex[:6]}:1"
    skopeo(
        "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:latest", f"docker://{ref}"
    )

    page = page_for("admin")
    page.goto(stack.url + "/images/")
    page.click("#image-pull-link")
    page.fill("#image-pull input[name=ref]", ref)
    page.select_option("#image-pull select[name=team]", "")
    page.click("#image-pull button[type=submit]")
    page.wait_for_url("**/operations/*/progress/")
    page.wait_for_function("() => document.getElementById('op-state').textContent === 'succeeded'")
    page.wait_for_function(
        "(n) => document.querySelectorAll('#op-layers progress[value]').length >= n",
        arg=len(layers),
    )
    values = page.eval_on_selector_all(
        "#op-layers tbody tr",
        "rows => rows.map(r => [r.dataset.id, r.querySelector('progress').value])",
    )
    by_id = dict(values)
    for desc in info["layers"]:
        assert by_id[desc["digest"]] == 100
    shot(page, "registries-pull-progress")
