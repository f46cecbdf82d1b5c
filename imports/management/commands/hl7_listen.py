"""manage.py hl7_listen [--host H] [--port N]: receive HL7 v2 ORU^R01 results over MLLP."""

from __future__ import annotations

import asyncio
import faulthandler
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from imports.mllp import Listener


class Command(BaseCommand):
    help = "Receive HL7 v2 ORU^R01 results over MLLP (runs until stopped)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.HL7_LISTEN_HOST)
        parser.add_argument(
            "--port", type=int, default=settings.HL7_LISTEN_PORT, help="0 picks a free port."
        )
        parser.add_argument("--workers", type=int, default=settings.HL7_WORKERS)

    def handle(self, *args, host: str, port: int, workers: int, **options) -> None:
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        faulthandler.register(signal.SIGUSR1)  # kill -USR1 prints every thread's stack
        listener = Listener(host=host, port=port, workers=workers)

        def ready(address: str) -> None:
            self.stdout.write(f"Listening for HL7 v2 (MLLP) on {address}", ending="\n")
            self.stdout.flush()

        try:
            asyncio.run(listener.serve(ready=ready))
        except KeyboardInterrupt:
            pass
