"""The MLLP listener: python-hl7's asyncio streams, one message at a time per connection.

Each framed block is decoded and stored (`imports.hl7v2.hl7_message_store`, committed) in a
worker thread (Django's ORM is synchronous; HL7_WORKERS threads, each with its own database
connection). Stored messages waiting to be processed are then processed together
(`hl7_messages_process`, group commit: one import and one alert evaluation for the group; at
most HL7_GROUP_MAX messages a group, HL7_GROUPS groups at once, fewer than the threads), and
each ACK is written back once its group is committed. A message is committed before its ACK is
written, so a listener stopped in between loses nothing: the sender, seeing no ACK, sends
again and gets the ACK then. If the database cannot be reached no ACK is sent and the
connection is closed (the sender retries). The listener stamps its `HL7Listener` row every
HL7_HEARTBEAT_SECONDS (a health check reads it).
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
from imports.hl7v2 import (
    hl7_message_process,
    hl7_message_store,
    hl7_messages_process,
    normalize,
)
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


def _store(raw: str) -> tuple[int, str] | None:
    """(the stored message's id, its ACK if it was acknowledged before), None when it cannot be
    stored (no ACK then: the sender resends)."""
    _fresh_connection()
    try:
        message = hl7_message_store(raw=normalize(raw))
    except Exception:
        logger.exception("HL7 message not stored (no ACK sent; the sender will resend)")
        return None
    return message.pk, message.ack


def _process_group(message_ids: list[int]) -> dict[int, str | None]:
    """Each message's ACK; None for one that could not be processed (no ACK is sent for it)."""
    _fresh_connection()
    try:
        return hl7_messages_process(message_ids=message_ids)
    except Exception:
        logger.exception("HL7 group not processed: its messages one by one")
    acks: dict[int, str | None] = {}
    for message_id in message_ids:
        try:
            acks[message_id] = hl7_message_process(message_id=message_id)
        except Exception:
            logger.exception("HL7 message not processed (no ACK sent; the sender will resend)")
            acks[message_id] = None
    return acks


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
        self.workers = workers or settings.HL7_WORKERS
        self.executor = ThreadPoolExecutor(max_workers=self.workers)
        self.messages = 0
        self.server = None
        self.address = ""
        self.waiting: list[tuple[int, asyncio.Future]] = []  # stored, not yet processed
        self.groups = 0  # groups being processed now
        self.grouped = 0  # messages in them
        self.connections = 0  # senders connected
        self.storing = 0  # messages being stored
        self.linger: asyncio.TimerHandle | None = None

    async def receive(self, raw: str) -> str | None:
        """Store the message, then wait for its group to be processed; its ACK (None: none)."""
        loop = asyncio.get_running_loop()
        self.storing += 1
        try:
            stored = await loop.run_in_executor(self.executor, _store, raw)
        finally:
            self.storing -= 1
        if stored is None:
            self._groups_start()  # the others need not wait for this one
            return None
        message_id, ack = stored
        if ack:
            self._groups_start()
            return ack  # sent before and acknowledged: the same ACK again
        answer = loop.create_future()
        self.waiting.append((message_id, answer))
        self._groups_start()
        return await answer

    def _groups_start(self, *, lingered: bool = False) -> None:
        """Start a group when every connected sender that is not waiting for a group already
        has a message stored and waiting (a sender waits for its ACK before the next message),
        or HL7_GROUP_LINGER_MS after the first one waited: the senders answered together send
        together, and their messages make one group, not a group of one and one of the rest.
        A lone sender's message starts at once."""
        loop = asyncio.get_running_loop()
        # A thread is left for storing, so arriving messages join the next group meanwhile.
        most = max(1, min(settings.HL7_GROUPS, self.workers - 1))
        while self.waiting and self.groups < most:
            may_send = self.connections - self.grouped - self.storing  # being stored: coming
            if not (lingered or len(self.waiting) >= min(may_send, settings.HL7_GROUP_MAX)):
                if self.linger is None:
                    self.linger = loop.call_later(
                        settings.HL7_GROUP_LINGER_MS / 1000, self._lingered
                    )
                return
            group = self.waiting[: settings.HL7_GROUP_MAX]
            del self.waiting[: len(group)]
            self.groups += 1
            self.grouped += len(group)
            loop.create_task(self._group(group))
            lingered = False
        if self.linger is not None and not self.waiting:
            self.linger.cancel()
            self.linger = None

    def _lingered(self) -> None:
        self.linger = None
        self._groups_start(lingered=True)

    async def _group(self, group: list[tuple[int, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            acks = await loop.run_in_executor(
                self.executor, _process_group, [message_id for message_id, _answer in group]
            )
        except Exception:  # the executor itself failed (shutting down): no ACKs
            logger.exception("HL7 group not processed")
            acks = {}
        finally:
            self.groups -= 1
            self.grouped -= len(group)
        took = (loop.time() - began) * 1e3
        logger.debug("HL7 group of %d processed in %.1f ms", len(group), took)
        for message_id, answer in group:
            if not answer.done():
                answer.set_result(acks.get(message_id))
        self._groups_start()

    async def handle(self, reader, writer) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    return  # the sender closed the connection
                except (InvalidBlockError, ValueError) as error:
                    logger.warning("MLLP framing error, connection closed: %s", error)
                    return
                ack = await self.receive(decode(block))
                if ack is None:
                    return
                writer.writeblock(ack.encode("utf-8"))
                await writer.drain()
                self.messages += 1
        except ConnectionError:
            return
        finally:
            self.connections -= 1
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
