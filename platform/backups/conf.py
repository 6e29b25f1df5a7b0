"""Where backups go and how long they stay; read from the environment (config/env.py)."""

from pathlib import Path

from django.conf import settings

from config.env import secret


def target_dir() -> Path:
    """The default target: BERTH_BACKUP_DIR, else <data dir>/backups."""
    return Path(secret("BERTH_BACKUP_DIR") or Path(settings.DATA_DIR) / "backups")


def password_file() -> Path:
    """The restic repository's password file, provided by the operator (mode 600)."""
    return Path(
        secret("BERTH_BACKUP_PASSWORD_FILE") or Path(settings.DATA_DIR) / "keys" / "backup.password"
    )


def repository_for(target: Path) -> str:
    """The restic repository of a target: BERTH_BACKUP_REPOSITORY (sftp:, s3:, ...) or <target>/restic."""
    return secret("BERTH_BACKUP_REPOSITORY") or str(Path(target).resolve() / "restic")


def keep_daily() -> int:
    """Scheduled sets kept, one per day, for this many days."""
    return int(secret("BERTH_BACKUP_KEEP_DAILY") or 7)


def keep_weekly() -> int:
    """Scheduled sets kept, one per week, for this many weeks beyond the daily ones."""
    return int(secret("BERTH_BACKUP_KEEP_WEEKLY") or 4)


def host_timeout() -> float:
    """How long a host may take for its share of a backup or a restore."""
    return float(secret("BERTH_BACKUP_HOST_SECONDS") or 1800)


def schedule_hour() -> int:
    """The hour (UTC) of the daily scheduled backup."""
    return int(secret("BERTH_BACKUP_HOUR") or 3)
