"""Group commit (issue 17, item 5): messages stored while others were processed are processed
together, through one import and one alert evaluation, and each gets the ACK it would get alone.

`hl7_messages_process` is called directly on stored messages (as the listener does for the
messages waiting), and once through a real listener process with four concurrent senders.
"""

from __future__ import annotations

import threading
from datetime import date

import pytest

from imports.hl7v2 import hl7_message_process, hl7_message_store, hl7_messages_process
from imports.models import PROCESSED, CodeMapping, HeldResult, HL7Message
from monitoring.models import Alert
from patients.models import LabResult
from tests.factories import InfusionFactory, PatientFactory
from tests.imports.hl7_helpers import (
    ProcessListener,
    ack_code,
    hl7_lab_feed,
    obx,
    oru,
    segments,
    send,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def feed(center):
    return hl7_lab_feed(center)


@pytest.fixture
def patients(center):
    out = []
    for k in range(4):
        patient = PatientFactory(center=center, study_id=f"CT-02{k:02d}", mrn=f"90{k}")
        InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
        out.append(patient)
    return out


def _stored(*messages: str) -> list[int]:
    return [hl7_message_store(raw=m).pk for m in messages]


def _errors(ack: str) -> list[tuple[str, str, str]]:
    return [(err[2], err[4], err[8]) for err in segments(ack, "ERR")]


def test_a_group_is_one_import_and_every_message_its_own_ack(
    feed, patients, django_assert_max_num_queries
):
    """Four single-result messages for four patients, day 9 after the infusion: 0 B cells for
    three, 12 cells/µL for one (early regeneration: a HIGH alert). Processed as a group they
    cost fewer queries than one message alone costs four times (44 each: test_hl7_feed)."""
    ids = _stored(
        *(
            oru(f"G-{k}", obx(1, value="12" if k == 0 else "0"), pid3=f"90{k}^^^HOSP^MR")
            for k in range(4)
        )
    )
    with django_assert_max_num_queries(51):  # 51 measured; alone, 4 × 44
        acks = hl7_messages_process(message_ids=ids)
    assert [ack_code(acks[i]) for i in ids] == ["AA"] * 4
    for pk in ids:
        message = HL7Message.objects.get(pk=pk)
        assert (message.state, message.ack, message.ack_code) == (PROCESSED, acks[pk], "AA")
        assert f"MSA|AA|G-{ids.index(pk)}" in message.ack
    assert [LabResult.objects.filter(patient=p).count() for p in patients] == [1, 1, 1, 1]
    assert list(Alert.objects.values_list("patient__study_id", flat=True)) == ["CT-0200"]
    # Processing again answers with the stored ACKs and imports nothing.
    assert hl7_messages_process(message_ids=ids) == acks
    assert LabResult.objects.count() == 4


def test_a_refused_message_does_not_refuse_its_group(feed, patients):
    """One message's result breaks a hard plausibility limit: the group's import is refused, so
    each message is processed alone: that one gets its AE with the ERR it gets alone, the others
    AA; a message of another kind (a held result) in the group keeps its warning."""
    good = oru("R-1", obx(1, value="0"), pid3="900^^^HOSP^MR")
    bad = oru("R-2", obx(1, value="900000"), pid3="901^^^HOSP^MR")
    unknown = oru("R-3", obx(1, value="0"), pid3="999^^^HOSP^MR")  # no such patient: held
    alone = hl7_message_store(raw=bad.replace("R-2", "R-2-ALONE"))
    alone_ack = hl7_message_process(message_id=alone.pk)
    assert ack_code(alone_ack) == "AE"
    LabResult.objects.all().delete()

    ids = _stored(good, bad, unknown)
    acks = hl7_messages_process(message_ids=ids)
    assert [ack_code(acks[i]) for i in ids] == ["AA", "AE", "AA"]
    assert _errors(acks[ids[1]]) == _errors(alone_ack)
    assert any(severity == "W" for _where, severity, _text in _errors(acks[ids[2]]))
    assert list(LabResult.objects.values_list("patient__study_id", flat=True)) == ["CT-0200"]
    assert HeldResult.objects.filter(hl7_message_id=ids[2]).count() == 1


def test_corrections_and_a_sample_named_twice_are_processed_alone(feed, patients):
    """A correction (OBX-11 C) replaces a stored value: its message goes on its own. Two
    messages naming the same sample: the second is processed after the first, as a resend with
    a new control ID would be alone (a duplicate of the stored result: AE)."""
    earlier = hl7_message_store(raw=oru("D-0", obx(1, value="0"), pid3="901^^^HOSP^MR"))
    assert ack_code(hl7_message_process(message_id=earlier.pk)) == "AA"
    stored = LabResult.objects.get(patient=patients[1])
    first = oru("D-1", obx(1, value="0"), pid3="900^^^HOSP^MR")
    again = oru("D-2", obx(1, value="0"), pid3="900^^^HOSP^MR")
    correction = oru("D-3", obx(1, value="3", status="C"), pid3="901^^^HOSP^MR")
    ids = _stored(first, again, correction)
    acks = hl7_messages_process(message_ids=ids)
    assert [ack_code(acks[i]) for i in ids] == ["AA", "AE", "AA"]
    assert LabResult.objects.filter(patient=patients[0]).count() == 1
    stored.refresh_from_db()
    assert stored.value == 3


@pytest.mark.django_db(transaction=True)
def test_four_concurrent_senders_through_a_listener_process(center, tmp_path):
    """The listener as deployed (its own process, two worker threads): four senders, ten
    messages each, sent concurrently; every message AA, stored once, imported once."""
    hl7_lab_feed(center, authority="")
    for k in range(4):
        patient = PatientFactory(center=center, study_id=f"CT-03{k:02d}", mrn=f"80{k}")
        InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    listener = ProcessListener(tmp_path / "listener.log")
    answers: dict[str, str] = {}

    def sender(k: int) -> None:
        for n in range(10):
            control = f"C-{k}-{n}"
            message = oru(control, pid3=f"80{k}^^^HOSP^MR", obr_time=f"2025031008{n:02d}")
            answers[control] = send(listener.address, message)

    try:
        threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        listener.stop()
    assert len(answers) == 40
    assert {control: ack_code(ack) for control, ack in answers.items()} == {
        control: "AA" for control in answers
    }
    assert HL7Message.objects.filter(state=PROCESSED).count() == 40
    assert LabResult.objects.count() == 40


def test_what_a_group_reads_of_the_configuration_ends_with_it(feed, patients, center):
    """The code map is read once per group, and again by the next group: a mapping added
    between two groups applies to the second (nothing of a group outlives its transaction)."""
    local = "CD19LOC^CD19 B cells local^L"
    ids = _stored(*(oru(f"M-{k}", obx(1, code=local), pid3=f"90{k}^^^HOSP^MR") for k in (0, 1)))
    acks = hl7_messages_process(message_ids=ids)
    assert [ack_code(acks[i]) for i in ids] == ["AA", "AA"]
    assert HeldResult.objects.count() == 2 and not LabResult.objects.exists()
    CodeMapping.objects.create(center=center, system="L", code="CD19LOC", analyte="pb_bcell_abs")
    ids = _stored(*(oru(f"N-{k}", obx(1, code=local), pid3=f"90{k}^^^HOSP^MR") for k in (2, 3)))
    acks = hl7_messages_process(message_ids=ids)
    assert [ack_code(acks[i]) for i in ids] == ["AA", "AA"]
    assert LabResult.objects.count() == 2 and HeldResult.objects.count() == 2
