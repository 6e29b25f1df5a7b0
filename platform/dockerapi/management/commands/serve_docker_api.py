"""manage.py serve_docker_api [--bind 127.0.0.1:2375]: the Docker Engine API with attach and exec."""

import asyncio

from django.core.management.base import BaseCommand, CommandError

from dockerapi import listener


class Command(BaseCommand):
    """Serve Berth's Docker API listener (dockerapi/listener.py) until interrupted."""

    help = (
        "Serve the Docker Engine API (docker CLI, SDKs) with attach and exec on its own port; "
        "clients set DOCKER_HOST=tcp://HOST:PORT and send a Berth token (docs/docker-api.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:2375", help="HOST:PORT (loopback only)")

    def handle(self, *args, **options):
        host, sep, port = options["bind"].rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"--bind must be HOST:PORT, not {options['bind']!r}")
        host = host.strip("[]") or "127.0.0.1"
        try:
            listener.check_bind(host)
        except ValueError as err:
            raise CommandError(str(err)) from None
        ready = lambda: self.stdout.write(f"Docker API on tcp://{host}:{port} ready.", ending="\n")  # noqa: E731
        try:
            asyncio.run(listener.serve(host, int(port), ready=ready))
        except OSError as err:
            raise CommandError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        except KeyboardInterrupt:
            pass
