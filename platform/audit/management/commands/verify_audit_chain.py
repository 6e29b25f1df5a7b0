"""manage.py verify_audit_chain: recompute the audit hash chain and report tampering."""

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEvent
from audit.services import verify_chain


class Command(BaseCommand):
    """Exit 0 when every event's hash and link is intact, 1 otherwise."""

    help = "Verify the audit log's hash chain."

    def handle(self, *args, **options):
        problems = verify_chain()
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"audit chain broken: {len(problems)} problem(s)")
        self.stdout.write(f"audit chain intact: {AuditEvent.objects.count()} event(s)")
