"""restic, the storage engine of backups: deduplicated, encrypted, incremental, verifiable.

The password reaches restic only through RESTIC_PASSWORD_FILE in its environment: never on a
command line (visible in `ps`) and never in a log line. Paths are given relative to the state
root (`volumes/<name>/_data`, `containers/<id>/upper`), so a snapshot restores onto another
machine whose state root differs.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import BerthError

RESTIC = os.environ.get("BERTH_RESTIC", "restic")


class BackupError(BerthError):
    """restic refused or failed; the message says why in the operator's words."""


def explain(stderr: str, location: str) -> str:
    """restic's error, with the usual causes named plainly."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else "restic failed"
    low = stderr.lower()
    if "no space left" in low:
        return f"the backup target {location} is full (no space left on device)"
    if "read-only file system" in low:
        return f"the backup target {location} is read-only"
    if "permission denied" in low:
        return f"the backup target {location} is not writable (permission denied)"
    if "wrong password" in low or "no key found" in low:
        return f"the backup password does not open the repository {location}"
    if "does not exist" in low and "repository" in low:
        return f"there is no restic repository at {location}"
    return f"restic: {text[:300]}"


@dataclass(frozen=True)
class Repository:
    """One restic repository (a local directory, sftp:..., s3:...) and its password file."""

    location: str
    password_file: Path

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(
            RESTIC_REPOSITORY=self.location,
            RESTIC_PASSWORD_FILE=str(self.password_file),
            # A private cache per repository keeps incremental runs fast and never shared.
            RESTIC_CACHE_DIR=env.get("BERTH_RESTIC_CACHE", "/var/cache/berth-restic"),
        )
        return env

    def run(self, *args: str, cwd: Path | None = None, timeout: float | None = None) -> str:
        """Run one restic command; BackupError with a plain reason when it fails."""
        if not self.password_file.is_file():
            raise BackupError(
                f"no backup password file at {self.password_file}: write the repository's "
                "password there (mode 600) or set BERTH_BACKUP_PASSWORD_FILE"
            )
        try:
            done = subprocess.run(
                [RESTIC, "--quiet", *args],
                cwd=cwd,
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except FileNotFoundError:
            raise BackupError(
                "restic is not installed on this host (apt-get install restic)"
            ) from None
        except subprocess.TimeoutExpired:
            raise BackupError(f"restic {args[0]} did not finish within {timeout:g} s") from None
        if done.returncode != 0:
            raise BackupError(explain(done.stderr, self.location))
        return done.stdout

    def backup(self, root: Path, paths: list[str], *, host: str, tags: list[str]) -> dict:
        """Back up `paths` (relative to `root`) as one snapshot; its summary (id, sizes).

        restic picks the parent itself (same host, same paths), so an unchanged file is not
        read again: that is what makes the next run incremental.
        """
        args = ["backup", "--json", "--host", host, "--one-file-system"]
        for tag in tags:
            args += ["--tag", tag]
        out = self.run(*args, *paths, cwd=root)
        summary = {}
        for line in out.splitlines():
            if '"summary"' in line:
                summary = json.loads(line)
        if not summary.get("snapshot_id"):
            raise BackupError("restic finished without naming a snapshot")
        return summary

    def restore(self, snapshot: str, includes: list[str], target: Path) -> None:
        """Restore the snapshot's paths `includes` (relative, as backed up) under `target`."""
        args = ["restore", snapshot, "--target", str(target)]
        for rel in includes:
            args += ["--include", "/" + rel]
        self.run(*args)
