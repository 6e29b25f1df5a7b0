"""`manage.py purge_removed_containers [--older-than SECONDS]`: drop old removed rows now."""

from django.core.management.base import BaseCommand, CommandError

from containers.purge import purge_removed


class Command(BaseCommand):
    """Delete the rows of containers removed longer ago than the retention."""

    help = "Delete rows of containers removed longer ago than BERTH_REMOVED_RETENTION_SECONDS."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=int, default=None, help="seconds (default: the setting)"
        )

    def handle(self, *args, older_than=None, **options):
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be 0 or more seconds")
        count = (
            purge_removed(retention=older_than)
            if older_than != 0
            else purge_removed(retention=1e-9)
        )
        self.stdout.write(f"purged {count} removed container(s)")
