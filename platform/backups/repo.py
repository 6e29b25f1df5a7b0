"""The control plane's restic calls: make the repository, check it, forget old snapshots.

Hosts write their data into the same repository themselves (agent/backup_ops.py). The
password goes to restic through RESTIC_PASSWORD_FILE only, never a command line or a log.
"""

import json
import os
import subprocess
from pathlib import Path

from backups import conf
from config.errors import InvalidRequest, Unavailable


class RepositoryError(Unavailable):
    """restic refused: the message names the cause (full, read-only, wrong password...)."""

    code = "backup_repository"


def _explain(stderr: str, location: str) -> str:
    low = stderr.lower()
    if "no space left" in low:
        return f"the backup target {location} is full (no space left on device)"
    if "read-only file system" in low:
        return f"the backup target {location} is read-only"
    if "permission denied" in low:
        return f"the backup target {location} is not writable (permission denied)"
    if "wrong password" in low or "no key found" in low:
        return f"the backup password does not open the repository {location}"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "failed"
    return f"restic: {last[:300]}"


def run(location: str, *args: str, timeout: float = 3600) -> str:
    """Run restic on the repository `location`; RepositoryError with a plain reason."""
    password = conf.password_file()
    if not password.is_file():
        raise InvalidRequest(
            f"no backup password file at {password}: write the repository's password there "
            "(mode 600) or set BERTH_BACKUP_PASSWORD_FILE",
            code="backup_password_missing",
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env.update(RESTIC_REPOSITORY=location, RESTIC_PASSWORD_FILE=str(password))
    env.setdefault("RESTIC_CACHE_DIR", env.get("BERTH_RESTIC_CACHE", "/var/cache/berth-restic"))
    try:
        done = subprocess.run(
            ["restic", "--quiet", *args], env=env, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise RepositoryError("restic is not installed (apt-get install restic)") from None
    if done.returncode != 0:
        raise RepositoryError(_explain(done.stderr, location))
    return done.stdout


def exists(location: str) -> bool:
    """A local repository has its config file (remote ones are assumed made)."""
    if ":" in location.split("/")[0]:
        return True
    return (Path(location) / "config").is_file()


def ensure(location: str) -> None:
    """Make the repository on first use."""
    if not exists(location):
        run(location, "init")


def snapshots(location: str) -> dict[str, dict]:
    """Every snapshot of the repository by full id."""
    return {s["id"]: s for s in json.loads(run(location, "snapshots", "--json") or "[]")}


def check(location: str, *, read_data: bool = False) -> None:
    """restic check: the repository's structure (and with read_data, every pack's content)."""
    run(location, "check", *(["--read-data"] if read_data else []))


def forget(location: str, snapshot_ids: list[str]) -> None:
    """Forget snapshots and prune the data no other snapshot uses."""
    if snapshot_ids:
        # A host that died mid-backup leaves a stale lock, which would block the prune.
        run(location, "unlock")
        run(location, "forget", "--prune", *snapshot_ids)
