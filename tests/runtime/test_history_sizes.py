"""`history` sizes: a layer's size counts each file once, however many hard links name it."""

import os

import pytest

pytestmark = pytest.mark.root


def test_history_counts_hard_links_once(rt):
    from runtime.build.commit import history

    rows = history(rt.images, "busybox")
    sized = [r for r in rows if r["size"]]
    assert len(sized) == 1
    binary = os.stat("/bin/busybox").st_size
    image = rt.images.resolve("busybox")
    (layer,) = image.layers
    links = os.stat(rt.images.layout.layer_path(layer) / "bin" / "busybox").st_nlink
    assert links > 100  # the applets: one binary behind hundreds of names
    # The binary once, plus a few small files (passwd, group): not binary * links.
    assert binary <= sized[0]["size"] < binary + 64 * 1024
