"""Named volumes' sizes on disk, measured on their host for the team volume_bytes quota.

Measured like `du`: the blocks allocated (st_blocks), each hard-linked file once, symbolic
links not followed, other file systems mounted inside not entered. Project quotas (XFS, or
ext4 with the `project` feature) would give the same number without a walk, and could even
enforce it, but the volumes directory sits on an ext4 mounted without `prjquota` here (the
common case), so the walk is the way that works everywhere. Each volume is
measured at most every BERTH_VOLUME_SIZE_SECONDS (60) during the reconcile pass, the least
recently measured first, and a pass stops walking after BUDGET_SECONDS (the next pass goes on),
so large volumes never hold up the reconciliation for long; a volume that is a bind of a host
path (`device=` option) is not the team's space and is not counted.
"""

import logging
import os
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from volumes.models import Volume

log = logging.getLogger(__name__)
BUDGET_SECONDS = 2.0


def disk_usage(path) -> int:
    """Bytes allocated on disk under `path`, as `du -s --block-size=1 -x` counts them."""
    root = os.lstat(path)
    total = root.st_blocks * 512
    seen: set[tuple[int, int]] = set()
    pending = [os.fspath(path)]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue  # removed meanwhile, or unreadable: counted as nothing
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False) and st.st_dev == root.st_dev:
                    pending.append(entry.path)
    return total


def measure(host_name: str, rt) -> int:
    """Measure this host's named volumes not measured lately; returns how many were."""
    now = timezone.now()
    every = timedelta(seconds=getattr(settings, "BERTH_VOLUME_SIZE_SECONDS", 60))
    due = (
        Volume.objects.filter(host__name=host_name, driver="local")
        .exclude(size_measured_at__gt=now - every)
        .order_by(F("size_measured_at").asc(nulls_first=True), "id")
        .only("id", "name", "options")
    )
    measured = 0
    started = time.monotonic()
    for vol in due:
        if time.monotonic() - started > BUDGET_SECONDS:
            break
        if (vol.options or {}).get("device"):
            continue
        data = rt.config.volumes_dir / vol.name / "_data"
        try:
            size = disk_usage(data)
        except FileNotFoundError:
            size = None  # not made on the host yet
        except OSError as err:
            log.warning("volume %s: cannot measure %s: %s", vol.name, data, err)
            continue
        Volume.objects.filter(id=vol.id).update(size=size, size_measured_at=now)
        measured += 1
    return measured
