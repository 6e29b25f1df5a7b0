"""Keep N daily and M weekly backup sets; delete older sets and forget their snapshots."""

import json
import shutil
from datetime import datetime
from pathlib import Path

from backups import conf, repo

SET_TIME = "%Y%m%dT%H%M%SZ"


def _when(set_dir: Path) -> datetime | None:
    try:
        return datetime.strptime(set_dir.name.split("-")[0], SET_TIME)
    except ValueError:
        return None


def choose(names_times: list[tuple[str, datetime]], daily: int, weekly: int) -> set[str]:
    """The sets to keep: the newest of each of the last `daily` days that have one, then the
    newest of each of the `weekly` ISO weeks older than those days."""
    keep, days, weeks, daily_weeks = set(), [], [], set()
    for name, when in sorted(names_times, key=lambda x: x[1], reverse=True):
        day, week = when.date(), when.isocalendar()[:2]
        if day in days or week in weeks:
            continue
        if len(days) < daily:
            days.append(day)
            keep.add(name)
            daily_weeks.add(week)
        elif week not in daily_weeks and len(weeks) < weekly:
            weeks.append(week)
            keep.add(name)
    return keep


def apply(target: Path, daily: int | None = None, weekly: int | None = None) -> list[str]:
    """Delete the sets outside the policy (and forget their snapshots); their names."""
    sets_dir = Path(target) / "sets"
    if not sets_dir.is_dir():
        return []
    found = [(p.name, _when(p)) for p in sets_dir.iterdir() if p.is_dir() and _when(p)]
    keep = choose(
        found,
        conf.keep_daily() if daily is None else daily,
        conf.keep_weekly() if weekly is None else weekly,
    )
    gone = []
    for name, _ in found:
        if name in keep:
            continue
        set_dir = sets_dir / name
        snaps = []
        try:
            data = json.loads((set_dir / "manifest.json").read_text())
            snaps = [p["snapshot"] for p in data.get("hosts", {}).values() if p.get("snapshot")]
            location = data.get("repository") or conf.repository_for(target)
        except (OSError, ValueError):
            location = conf.repository_for(target)
        repo.forget(location, snaps)
        shutil.rmtree(set_dir)
        gone.append(name)
    return gone
