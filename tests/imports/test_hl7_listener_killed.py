"""A `manage.py hl7_listen` process killed (SIGKILL) after storing a message and before
acknowledging it loses nothing: the sender, without an ACK, sends it again to the next listener,
which imports it once and acknowledges it; a further resend gets the same ACK.

The listener is held inside the message's import by a lock on the lab results table, so it is
killed with the message committed and its results not. The data must be committed for the
listener process to see it (transactional_db).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import date

import psycopg
import pytest
from django.db import connection

from imports.models import PROCESSED, RECEIVED, HL7Listener, HL7Message
from patients.models import LabResult
from tests.factories import InfusionFactory, PatientFactory
from tests.imports.hl7_helpers import ProcessListener, ack_code, hl7_lab_feed, oru, send

pytestmark = pytest.mark.django_db(transaction=True)


def _query(sql: str) -> list[tuple]:
    """pg_stat_activity through the test's own (autocommit) connection: inside the blocker's
    transaction PostgreSQL would answer from the snapshot its first read took."""
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_a_listener_killed_between_storing_and_acknowledging_loses_nothing(
    center, tmp_path, wait_for
):
    hl7_lab_feed(center, authority="")
    patient = PatientFactory(center=center, study_id="CT-0300", mrn="4711")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    message = oru("KILL-1")
    first = ProcessListener(tmp_path / "listener-1.log")
    db = connection.settings_dict
    blocker = psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )
    answers: list = []
    try:
        wait_for(
            lambda: HL7Listener.objects.filter(address=first.address).exists(),
            timeout=20,
            what="the listener's heartbeat row",
        )
        blocker.execute("LOCK TABLE patients_labresult IN SHARE MODE")  # reads pass, writes wait

        def sender() -> None:
            try:
                answers.append(send(first.address, message))
            except OSError as error:
                answers.append(error)

        thread = threading.Thread(target=sender)
        thread.start()
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        try:
            wait_for(
                lambda: _query(waiting)[0][0] == 1,
                timeout=60,
                what="the listener to wait on the lab results table",
            )
        except AssertionError:
            os.kill(first.process.pid, signal.SIGUSR1)  # the listener prints its threads' stacks
            time.sleep(1)
            rows = _query(
                "SELECT state, wait_event_type, left(query, 300) FROM pg_stat_activity "
                "WHERE datname = current_database()"
            )
            raise AssertionError(f"{answers} {rows} {first.log_path.read_text()}") from None
        stored = HL7Message.objects.get()  # committed before the import began
        assert (stored.control_id, stored.state, stored.ack) == ("KILL-1", RECEIVED, "")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        _query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        blocker.rollback()
        thread.join(10)
    finally:
        blocker.close()
        first.stop()
    assert answers and not (isinstance(answers[0], str) and answers[0])  # no ACK reached it
    assert not LabResult.objects.exists()

    second = ProcessListener(tmp_path / "listener-2.log")
    try:
        ack = send(second.address, message)
        assert ack_code(ack) == "AA", ack
        assert send(second.address, message) == ack
    finally:
        second.stop()
    assert LabResult.objects.filter(patient=patient).count() == 1
    stored = HL7Message.objects.get()
    assert stored.state == PROCESSED and stored.ack == ack
