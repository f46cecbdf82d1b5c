"""The MLLP listener: python-hl7's asyncio streams, one message at a time per connection.

Each framed block is decoded, handed to `imports.hl7v2.hl7_message_receive` in a worker thread
(Django's ORM is synchronous; HL7_WORKERS threads, each with its own database connection), and
its ACK written back. The message is committed before the ACK is written, so a listener stopped
in between loses nothing: the sender, seeing no ACK, sends again and gets the ACK then. If the
database cannot be reached no ACK is sent and the connection is closed (the sender retries).
The listener stamps its `HL7Listener` row every HL7_HEARTBEAT_SECONDS (a health check reads it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from hl7.mllp import start_hl7_server
from hl7.mllp.exceptions import InvalidBlockError

from imports.codes import _registry
from imports.hl7v2 import hl7_message_receive
from imports.models import HL7Listener

logger = logging.getLogger(__name__)
ENCODINGS = ("utf-8", "cp1252")  # MSH-18 is rarely sent; Windows-1252 is the usual other one


def decode(block: bytes) -> str:
    for encoding in ENCODINGS:
        try:
            return block.decode(encoding)
        except UnicodeDecodeError:
            continue
    return block.decode("latin-1")


def _fresh_connection() -> None:
    """Drop a broken or too old connection between messages (as Django does between requests);
    never inside a transaction (the tests run a listener inside theirs)."""
    if not connection.in_atomic_block:
        close_old_connections()


def _receive(raw: str) -> str | None:
    _fresh_connection()
    try:
        return hl7_message_receive(raw=raw)
    except Exception:
        logger.exception("HL7 message not processed (no ACK sent; the sender will resend)")
        return None


def _beat(address: str, started, messages: int) -> None:
    _fresh_connection()
    try:
        HL7Listener.objects.update_or_create(
            address=address,
            defaults={
                "pid": os.getpid(),
                "started_at": started,
                "heartbeat_at": timezone.now(),
                "messages": messages,
            },
        )
    except Exception:
        logger.exception("HL7 listener heartbeat not stored")


class Listener:
    def __init__(self, *, host: str, port: int, workers: int | None = None):
        self.host, self.port = host, port
        self.executor = ThreadPoolExecutor(max_workers=workers or settings.HL7_WORKERS)
        self.messages = 0
        self.server = None
        self.address = ""

    async def handle(self, reader, writer) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    return  # the sender closed the connection
                except (InvalidBlockError, ValueError) as error:
                    logger.warning("MLLP framing error, connection closed: %s", error)
                    return
                ack = await loop.run_in_executor(self.executor, _receive, decode(block))
                if ack is None:
                    return
                writer.writeblock(ack.encode("utf-8"))
                await writer.drain()
                self.messages += 1
        except ConnectionError:
            return
        finally:
            writer.close()

    async def serve(self, ready=None) -> None:
        loop = asyncio.get_running_loop()
        self.server = await start_hl7_server(self.handle, self.host, self.port)
        host, port = self.server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        started = timezone.now()
        # The UCUM grammar takes seconds to build: before the first message, not during it.
        await loop.run_in_executor(self.executor, _registry)
        await loop.run_in_executor(self.executor, _beat, self.address, started, 0)
        logger.warning("HL7 MLLP listener on %s", self.address)
        if ready is not None:
            ready(self.address)
        async with self.server:
            while True:
                await asyncio.sleep(settings.HL7_HEARTBEAT_SECONDS)
                await loop.run_in_executor(
                    self.executor, _beat, self.address, started, self.messages
                )
