"""manage.py serve_docker_api [--bind 127.0.0.1:2375]: the Docker Engine API with attach and exec."""

import asyncio
import ssl

from django.core.management.base import BaseCommand, CommandError

from dockerapi import listener, tls


class Command(BaseCommand):
    """Serve Berth's Docker API listener (dockerapi/listener.py) until interrupted."""

    help = (
        "Serve the Docker Engine API (docker CLI, SDKs) with attach and exec on its own port; "
        "clients set DOCKER_HOST=tcp://HOST:PORT and send a Berth token (docs/docker-api.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind", default="127.0.0.1:2375", help="HOST:PORT (loopback only without TLS)"
        )
        parser.add_argument("--tls-cert", help="serve TLS with this certificate (PEM)")
        parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
        parser.add_argument(
            "--tls-ca", help="accept client certificates issued by this CA (issue_docker_cert)"
        )

    def handle(self, *args, **options):
        host, sep, port = options["bind"].rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"--bind must be HOST:PORT, not {options['bind']!r}")
        host = host.strip("[]") or "127.0.0.1"
        context = None
        if options["tls_cert"] or options["tls_key"] or options["tls_ca"]:
            if not (options["tls_cert"] and options["tls_key"]):
                raise CommandError("TLS needs both --tls-cert and --tls-key")
            try:
                context = tls.server_context(
                    options["tls_cert"], options["tls_key"], options["tls_ca"]
                )
            except (OSError, ssl.SSLError) as err:
                raise CommandError(f"cannot load the TLS certificate: {err}") from None
        try:
            listener.check_bind(host, tls_on=context is not None)
        except ValueError as err:
            raise CommandError(str(err)) from None
        what = "with TLS" + (" and client certificates" if options["tls_ca"] else "")
        ready = lambda: self.stdout.write(  # noqa: E731
            f"Docker API on tcp://{host}:{port}{' ' + what if context else ''} ready.", ending="\n"
        )
        try:
            asyncio.run(listener.serve(host, int(port), ready=ready, ssl_context=context))
        except OSError as err:
            raise CommandError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        except KeyboardInterrupt:
            pass
