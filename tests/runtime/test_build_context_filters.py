"""A tar build context is unpacked only through tarfile's extraction filters (PEP 706): the
standard library's (3.11.4+), else the backport's (backports.tarfile, Debian 12's 3.11.2);
without either, a clear refusal and no scratch directory left."""

import io
import sys
import tarfile

import pytest

from runtime.build.context import BuildContext
from runtime.build.errors import ContextError


def _context_tar(directory, extra: str | None = None):
    """A tar build context holding one Dockerfile (and a member named `extra`)."""
    archive = directory / "context.tar"
    with tarfile.open(archive, "w") as tar:
        names = ["Dockerfile"] + ([extra] if extra else [])
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(b"FROM busybox\n")
            tar.addfile(info, io.BytesIO(b"FROM busybox\n"))
    return archive


def test_without_extraction_filters_a_tar_context_is_refused(tmp_path, monkeypatch):
    archive = _context_tar(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if hasattr(tarfile, "data_filter"):
        monkeypatch.delattr(tarfile, "data_filter")
    monkeypatch.setitem(sys.modules, "backports.tarfile", None)  # the backport missing too
    with pytest.raises(ContextError, match="needs tarfile's extraction filters"):
        BuildContext(archive, scratch_parent=scratch)
    assert list(scratch.iterdir()) == []


def test_with_extraction_filters_the_same_context_unpacks(tmp_path):
    archive = _context_tar(tmp_path)
    context = BuildContext(archive, scratch_parent=tmp_path)
    try:
        assert (context.root / "Dockerfile").read_bytes() == b"FROM busybox\n"
    finally:
        context.close()


def test_without_the_standard_librarys_filters_the_backport_unpacks_and_filters(
    tmp_path, monkeypatch
):
    """As on Debian 12's Python: the backport's "data" filter unpacks the context and still
    refuses a member that climbs out of it."""
    pytest.importorskip("backports.tarfile")
    if hasattr(tarfile, "data_filter"):
        monkeypatch.delattr(tarfile, "data_filter")
    good = tmp_path / "good"
    good.mkdir()
    context = BuildContext(_context_tar(good), scratch_parent=tmp_path)
    try:
        assert (context.root / "Dockerfile").read_bytes() == b"FROM busybox\n"
    finally:
        context.close()
    bad = tmp_path / "bad"
    bad.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(ContextError, match="outside the destination"):
        BuildContext(_context_tar(bad, extra="../escaped"), scratch_parent=scratch)
    assert not (scratch / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert list(scratch.iterdir()) == []
