"""A tar build context is never unpacked by a Python without tarfile's extraction filters
(PEP 706, 3.11.4): a clear refusal, and no scratch directory left."""

import io
import tarfile

import pytest

from runtime.build.context import BuildContext
from runtime.build.errors import ContextError


def _context_tar(directory):
    """A tar build context holding one Dockerfile."""
    archive = directory / "context.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(b"FROM busybox\n")
        tar.addfile(info, io.BytesIO(b"FROM busybox\n"))
    return archive


def test_without_extraction_filters_a_tar_context_is_refused(tmp_path, monkeypatch):
    archive = _context_tar(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(ContextError, match="needs Python 3.11.4 or newer"):
        BuildContext(archive, scratch_parent=scratch)
    assert list(scratch.iterdir()) == []


def test_with_extraction_filters_the_same_context_unpacks(tmp_path):
    archive = _context_tar(tmp_path)
    context = BuildContext(archive, scratch_parent=tmp_path)
    try:
        assert (context.root / "Dockerfile").read_bytes() == b"FROM busybox\n"
    finally:
        context.close()
