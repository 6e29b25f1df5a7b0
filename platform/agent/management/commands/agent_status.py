"""`manage.py agent_status`: each host's heartbeat, queue, operations in flight and ghosts."""

from django.core.management.base import BaseCommand
from django.db.models import Count, Q
from django.utils import timezone

from agent.heartbeat import DOWN_AFTER
from hosts.models import Host


class Command(BaseCommand):
    """Print one line per host: state, heartbeat age, pending/running operations, ghosts."""

    help = (
        "Show each host agent's state, last heartbeat, operations in flight and ghost containers."
    )

    def handle(self, *args, **options):
        now = timezone.now()
        hosts = Host.objects.annotate(
            pending=Count("operations", filter=Q(operations__state="pending"), distinct=True),
            running=Count("operations", filter=Q(operations__state="running"), distinct=True),
            ghosts=Count("containers", filter=Q(containers__observed_state="ghost"), distinct=True),
        ).order_by("name")
        self.stdout.write(
            f"{'host':<20} {'queue':<26} {'state':<6} {'heartbeat':>10} {'pending':>7} {'running':>7} {'ghosts':>6}"
        )
        for host in hosts:
            if host.last_heartbeat:
                age = (now - host.last_heartbeat).total_seconds()
                beat = f"{age:.0f}s ago"
                state = "up" if age <= DOWN_AFTER.total_seconds() else "down"
            else:
                beat, state = "never", "down"
            self.stdout.write(
                f"{host.name:<20} {host.queue:<26} {state:<6} {beat:>10} {host.pending:>7} {host.running:>7} {host.ghosts:>6}"
            )
