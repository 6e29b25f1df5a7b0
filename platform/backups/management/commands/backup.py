"""`manage.py backup [--to DIR] [--volumes all|none|NAME...] [--images refs|blobs]`."""

from django.core.management.base import BaseCommand, CommandError

from backups.backup import do_backup
from config.errors import PlatformError


class Command(BaseCommand):
    """Write one backup set of the whole platform and print where it is."""

    help = (
        "Back up the database, every container's spec, named volumes and upper layers (through "
        "each host's agent, into a restic repository) and images, as one verifiable set."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--to", default=None, help="target directory (default BERTH_BACKUP_DIR)"
        )
        parser.add_argument("--volumes", nargs="+", default=["all"], help="all, none or names")
        parser.add_argument("--images", choices=["refs", "blobs"], default="refs")

    def handle(self, *args, to, volumes, images, **options):
        try:
            run = do_backup(to=to, volumes=volumes, images=images)
        except PlatformError as err:
            raise CommandError(f"backup failed: {err.message}") from None
        self.stdout.write(
            f"backup set {run.set_id} written to {run.path} "
            f"({run.size_bytes} bytes, {run.duration_seconds:.1f} s)"
        )
        self.stdout.write(run.path)
