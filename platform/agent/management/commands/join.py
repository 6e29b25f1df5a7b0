"""`manage.py join URL TOKEN`: join this machine as an enrolled host (see agent/join.py)."""

import sys

from django.core.management.base import BaseCommand, CommandError

from agent import join
from agent.hostname import this_host


class Command(BaseCommand):
    """Present a one-time join token, write this host's identity file, and exit."""

    help = (
        "Join the control plane at URL with the one-time join token an admin got when adding "
        "the host (TOKEN '-' reads it from standard input), and write the agent's identity."
    )
    requires_system_checks: list = []  # the agent's machine runs none of the web tier

    def add_arguments(self, parser):
        parser.add_argument("url", help="the control plane's base URL, e.g. https://berth:8000/")
        parser.add_argument("token", help="the join token, or - to read it from stdin")

    def handle(self, *args, url, token, **options):
        if token == "-":
            token = sys.stdin.readline().strip()
        if not token:
            raise CommandError("no join token given")
        try:
            result = join.join(url, token)
        except join.JoinFailed as err:
            raise CommandError(f"join refused: {err}") from None
        out = self.stdout.write
        out(f"joined as host {result.host!r} (queue {result.queue}, key {result.key_id})")
        out(f"identity written to {result.path} (mode 600)")
        if abs(result.clock_offset) > 5:
            out(f"note: this clock differs from the control plane's by {result.clock_offset:.0f} s")
        if result.broker_url:
            # Never printed: it carries the broker's credentials.
            out("the broker's URL is kept in the identity file; scripts/berth-agent uses it")
        if this_host() != result.host:
            out(f"start the agent with BERTH_AGENT_HOST={result.host} scripts/berth-agent")
        else:
            out("start the agent with scripts/berth-agent")
