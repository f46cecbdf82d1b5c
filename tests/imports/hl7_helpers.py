"""HL7 v2 test helpers: ORU^R01 messages, a real MLLP listener (in a thread of the test process,
or a `manage.py hl7_listen` subprocess) and python-hl7's MLLP client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.db import connection, connections
from hl7.client import MLLPClient

from imports.mllp import Listener
from imports.models import CodeMapping, HL7Feed

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "hl7v2"


def hl7_lab_feed(center, *, authority: str = "HOSP") -> HL7Feed:
    """The test laboratory's feed at `center` (MSH-3/4 LAB|HOSP, PID-3 an MRN of type MR, of
    `authority` unless empty) and its code CD19ABS (system L) for PB CD19+ B cells/µL."""
    CodeMapping.objects.create(center=center, system="L", code="CD19ABS", analyte="pb_bcell_abs")
    return HL7Feed.objects.create(
        center=center,
        sending_application="LAB",
        sending_facility="HOSP",
        identifier_type="MR",
        assigning_authority=authority,
        identifier_is="mrn",
    )


def fixture(name: str) -> str:
    """A public sample message as on the wire (segments end with \\r)."""
    return (FIXTURES / name).read_bytes().decode()


def obx(
    n: int,
    code: str = "CD19ABS^CD19+ B cells^L",
    value: str = "12",
    unit: str = "/uL",
    status: str = "F",
    time: str = "",
    value_type: str = "NM",
) -> str:
    return f"OBX|{n}|{value_type}|{code}||{value}|{unit}|||||{status}|||{time}"


def oru(
    control: str,
    *obxs: str,
    pid3: str = "4711^^^HOSP^MR",
    obr_time: str = "202503100800",
    version: str = "2.5.1",
    sender: str = "LAB|HOSP",
    message_type: str = "ORU^R01^ORU_R01",
) -> str:
    segments = [
        f"MSH|^~\\&|{sender}|CARTTRACK|ALPHA|20250310090000||{message_type}|{control}|P|{version}",
        f"PID|1||{pid3}||Doe^Jane||19900517|F",
        f"OBR|1||ORD-{control}|CD19^B-cell panel^L|||{obr_time}",
        *(obxs or (obx(1),)),
    ]
    return "\r".join(segments) + "\r"


def unframe(data: bytes) -> str:
    return data.lstrip(b"\x0b").rstrip(b"\r").rstrip(b"\x1c").decode()


def segments(ack: str, name: str) -> list[list[str]]:
    """The fields of each `name` segment, separators unescaped."""
    return [
        [f.replace("\\S\\", "^").replace("\\F\\", "|") for f in s.split("|")]
        for s in ack.split("\r")
        if s.startswith(name + "|")
    ]


def ack_code(ack: str) -> str:
    return segments(ack, "MSA")[0][1]


def send(address: str, message: str) -> str:
    host, port = address.rsplit(":", 1)
    with MLLPClient(host, int(port)) as client:
        return unframe(client.send_message(message))


class ThreadListener:
    """The asyncio MLLP listener in a thread of the test process, on a free port.

    Its one worker thread uses the test's own database connection (Django's thread sharing, as
    its live server does), so the listener sees the test's data inside the test's transaction
    and everything is rolled back after it: the test thread waits for each ACK, so the
    connection is never used by both at once."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        shared = connections["default"]
        shared.inc_thread_sharing()

        def share() -> None:
            connections["default"] = shared

        self.shared = shared
        self.listener = Listener(host="127.0.0.1", port=0, workers=1)
        self.listener.executor = ThreadPoolExecutor(max_workers=1, initializer=share)
        self.loop = asyncio.new_event_loop()
        self.address = ""
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            def up(address: str) -> None:
                self.address = address
                ready.set()

            self.task = self.loop.create_task(self.listener.serve(ready=up))
            try:
                self.loop.run_until_complete(self.task)
            except asyncio.CancelledError:
                pass

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(30), "the MLLP listener did not start"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)
        self.listener.executor.shutdown(wait=True)
        self.shared.dec_thread_sharing()


class ProcessListener:
    """`manage.py hl7_listen --port 0` as a subprocess on the test database."""

    def __init__(self, log_path: Path) -> None:
        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                f"{db['PORT'] or 5432}/{db['NAME']}"
            ),
            "HL7_HEARTBEAT_SECONDS": "1",
        }
        self.log_path = log_path
        self._log = open(log_path, "w")
        root = Path(__file__).resolve().parents[2]
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "hl7_listen", "--port", "0", "--workers", "2"],
            cwd=root,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = log_path.read_text()
            if "Listening for HL7 v2 (MLLP) on " in text:
                self.address = text.split("Listening for HL7 v2 (MLLP) on ")[1].split()[0]
                return
            assert self.process.poll() is None, f"the listener died:\n{text}"
            time.sleep(0.1)
        raise AssertionError(f"the listener did not start:\n{log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
