"""`manage.py restore FROM [--host-map OLD=NEW ...] [--dry-run] [--force]`."""

from django.core.management.base import BaseCommand, CommandError

from backups import restore
from config.errors import PlatformError


class Command(BaseCommand):
    """Restore a whole site from a backup set onto this (fresh) install."""

    help = (
        "Check the set (checksums, keys, an empty install), restore the database, then every "
        "host's volumes and containers; start the ones that ran. --dry-run prints the plan."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="the backup set's directory")
        parser.add_argument("--host-map", nargs="*", default=[], metavar="OLD=NEW")
        parser.add_argument("--dry-run", action="store_true", help="print what would happen")
        parser.add_argument("--force", action="store_true", help="replace a non-empty install")

    def handle(self, *args, source, host_map, dry_run, force, **options):
        try:
            the_plan = restore.plan(source, restore.parse_host_map(host_map), force=force)
            for line in the_plan.lines():
                self.stdout.write(line)
            if dry_run:
                self.stdout.write("dry run: nothing was changed")
                return
            run = restore.do_restore(the_plan)
        except restore.RestoreError as err:
            raise CommandError(f"restore incomplete: {err.message}") from None
        except PlatformError as err:
            raise CommandError(f"restore refused: {err.message}") from None
        self.stdout.write(f"restored set {run.set_id} in {run.duration_seconds:.1f} s")
