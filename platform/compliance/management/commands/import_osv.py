"""`manage.py import_osv FILE`: import an OSV export zip and match every image inventory."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from compliance import services
from config.errors import InvalidRequest


class Command(BaseCommand):
    """Import the OSV records of a zip (malformed ones skipped and counted), then re-match."""

    help = "Import an OSV database export (zip of OSV JSON records) and match image inventories."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        try:
            result, matches = services.do_import_osv(path, filename=path.name)
        except InvalidRequest as err:
            raise CommandError(err.message) from None
        self.stdout.write(
            f"{result.records} records: {result.imported} imported, {result.skipped} skipped; "
            f"{matches} advisories match the image inventories ({result.duration_ms} ms)"
        )
        for problem in result.problems[:10]:
            self.stdout.write(f"  skipped {problem}")
