"""The alert inbox, the open-alert flag on the patient list and the navigation badge.

Alerts here are stored directly (the rules engine has its own tests); what matters is which a
user sees, in which order, and that the page does not run a query per alert.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from monitoring.models import Alert
from tests.conftest import FIXED_NOW
from tests.factories import InfusionFactory, PatientFactory

pytestmark = pytest.mark.usefixtures("frozen_now")


_TITLES = {
    "early_regeneration": "Early B-cell regeneration",
    "late_recovery": "Late B-cell recovery",
    "aplasia_not_reached": "B-cell aplasia not documented",
    "bcell_count_due": "PB B-cell count due",
}


def stored_alert(
    study_id: str,
    *,
    center,
    severity="high",
    status="open",
    days_ago=1,
    rule="early_regeneration",
    acknowledged_by=None,
) -> Alert:
    """One alert of a patient of its own, raised `days_ago` before the frozen now."""
    patient = PatientFactory(center=center, study_id=study_id)
    infusion = InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    alert = Alert.objects.create(
        patient=patient,
        infusion=infusion,
        infusion_number=1,
        rule=rule,
        severity=severity,
        status=status,
        title=_TITLES[rule],
        day=30,
        rule_version="default-1",
        acknowledged_by=acknowledged_by,
        acknowledged_at=FIXED_NOW if acknowledged_by else None,
    )
    Alert.objects.filter(pk=alert.pk).update(raised_at=FIXED_NOW - timedelta(days=days_ago))
    return alert


def inbox_study_ids(response) -> list[str]:
    """The study IDs of the inbox rows, top to bottom."""
    assert response.status_code == 200
    table = re.search(
        r'<table[^>]*data-testid="alert-inbox".*?</table>', response.content.decode(), re.S
    )
    assert table, "no inbox table on the page"
    return re.findall(r'href="/patients/(CT-\d+)/"', table.group(0))


@pytest.fixture
def mixed_inbox(center, clinician):
    """Alerts of every severity and status at Center Alpha (study ID: what it is)."""
    return {
        "info-old": stored_alert(
            "CT-0001", center=center, severity="info", days_ago=10, rule="late_recovery"
        ),
        "high-new": stored_alert("CT-0002", center=center, severity="high", days_ago=1),
        "high-old-ack": stored_alert(
            "CT-0003",
            center=center,
            severity="high",
            days_ago=5,
            status="acknowledged",
            acknowledged_by=clinician,
        ),
        "warning": stored_alert(
            "CT-0004", center=center, severity="warning", days_ago=3, rule="aplasia_not_reached"
        ),
        "reminder": stored_alert(
            "CT-0005", center=center, severity="reminder", days_ago=2, rule="bcell_count_due"
        ),
        "closed-high": stored_alert(
            "CT-0006", center=center, severity="high", days_ago=20, status="closed"
        ),
        "withdrawn-info": stored_alert(
            "CT-0007",
            center=center,
            severity="info",
            days_ago=30,
            status="withdrawn",
            rule="late_recovery",
        ),
    }


def test_inbox_lists_active_alerts_by_severity_then_newest_first(clinician_client, mixed_inbox):
    response = clinician_client.get(reverse("monitoring:inbox"))

    # high (newest first: a new high alert is never below an old one), warning, reminder, info;
    # closed and withdrawn are not in the inbox.
    assert inbox_study_ids(response) == ["CT-0002", "CT-0003", "CT-0004", "CT-0005", "CT-0001"]


def test_inbox_with_any_status_puts_active_alerts_first(clinician_client, mixed_inbox):
    response = clinician_client.get(reverse("monitoring:inbox"), {"status": "all"})

    assert inbox_study_ids(response) == [
        "CT-0002",
        "CT-0003",
        "CT-0004",
        "CT-0005",
        "CT-0001",
        "CT-0006",
        "CT-0007",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"severity": "high"}, ["CT-0002", "CT-0003"]),
        ({"severity": "info", "status": "all"}, ["CT-0001", "CT-0007"]),
        ({"status": "closed"}, ["CT-0006"]),
        ({"status": "withdrawn"}, ["CT-0007"]),
        ({"status": "acknowledged"}, ["CT-0003"]),
        ({"severity": "high", "status": "open"}, ["CT-0002"]),
    ],
)
def test_inbox_filters(clinician_client, mixed_inbox, query, expected):
    assert inbox_study_ids(clinician_client.get(reverse("monitoring:inbox"), query)) == expected


def test_registry_staff_filter_the_inbox_by_center(client, registry, center, other_center):
    stored_alert("CT-0011", center=center)
    stored_alert("CT-0021", center=other_center)
    client.force_login(registry)

    # Raised at the same moment: the later one first.
    assert inbox_study_ids(client.get(reverse("monitoring:inbox"))) == ["CT-0021", "CT-0011"]
    assert inbox_study_ids(client.get(reverse("monitoring:inbox"), {"center": "beta"})) == [
        "CT-0021"
    ]


def test_inbox_shows_no_alerts_of_another_center(client, stranger, mixed_inbox, other_center):
    stored_alert("CT-0021", center=other_center)
    client.force_login(stranger)

    assert inbox_study_ids(client.get(reverse("monitoring:inbox"))) == ["CT-0021"]
    # Asking for the other center by its code does not reveal its alerts either.
    shown = inbox_study_ids(
        client.get(reverse("monitoring:inbox"), {"center": "alpha", "status": "all"})
    )
    assert not set(shown) & {"CT-0001", "CT-0002", "CT-0003", "CT-0006"}


def test_inbox_rejects_other_methods(clinician_client):
    assert clinician_client.post(reverse("monitoring:inbox")).status_code == 405


def test_patient_list_flags_the_patient_with_an_open_alert(clinician_client, mixed_inbox):
    page = clinician_client.get(reverse("patients:list")).content.decode()

    rows = {
        re.search(r'href="/patients/(CT-\d+)/"', row).group(1): row
        for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)
        if "/patients/CT-" in row
    }
    flagged = mixed_inbox["high-new"]
    assert f'class="sev sev-high" href="{flagged.get_absolute_url()}"' in rows["CT-0002"]
    # Closed and withdrawn alerts raise no flag.
    assert "sev-" not in rows["CT-0006"]
    assert "sev-" not in rows["CT-0007"]


def test_navigation_badge_counts_the_open_alerts(clinician_client, mixed_inbox):
    page = clinician_client.get(reverse("patients:list")).content.decode()

    badge = re.search(
        r'<span class="badge ([^"]*)" data-testid="nav-monitoring-count">'
        r"(\d+)</span>",
        page,
    )
    assert badge, "no open-alert badge in the navigation bar"
    assert badge.group(2) == "5"  # open or acknowledged, of every severity
    assert badge.group(1) == "high"


def test_navigation_badge_is_absent_without_open_alerts(client, stranger, mixed_inbox):
    client.force_login(stranger)  # Center Alpha's alerts are not theirs

    page = client.get(reverse("patients:list")).content.decode()

    assert 'data-testid="nav-monitoring-count"' not in page


def _inbox_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("monitoring:inbox"), {"status": "all"})
    assert response.status_code == 200
    return len(queries)


def _alerts(center, clinician, start: int, count: int) -> None:
    """`count` alerts of every status, a third of them acknowledged by the clinician."""
    statuses = ["open", "acknowledged", "closed"]
    for n in range(start, start + count):
        status = statuses[n % 3]
        stored_alert(
            f"CT-{n:04d}",
            center=center,
            severity=["high", "info"][n % 2],
            status=status,
            days_ago=n % 17 + 1,
            acknowledged_by=clinician if status != "open" else None,
        )


def test_inbox_queries_do_not_grow_with_the_number_of_alerts(
    clinician_client, center, clinician, django_assert_max_num_queries
):
    _alerts(center, clinician, 100, 3)
    with_three = _inbox_queries(clinician_client)

    _alerts(center, clinician, 200, 27)
    with django_assert_max_num_queries(with_three):
        response = clinician_client.get(reverse("monitoring:inbox"), {"status": "all"})

    assert len(inbox_study_ids(response)) == 30


def test_inbox_timestamps_are_shown_in_the_clinical_time_zone(clinician_client, center):
    alert = stored_alert("CT-0031", center=center)
    # 23:30 UTC on 1 November is 00:30 on 2 November in Berlin.
    Alert.objects.filter(pk=alert.pk).update(raised_at=datetime(2025, 11, 1, 23, 30, tzinfo=UTC))

    page = clinician_client.get(reverse("monitoring:inbox")).content.decode()

    assert "<td>2 Nov 2025<br>" in page


def test_imported_history_is_not_shown_as_work_in_the_patient_list(
    clinician_client, clinician, center, frozen_now
):
    """A historical alert (imported history, still open) is recorded, not work to do: no chip
    in the patient list, as in the inbox, the worklist and the badge."""
    current = stored_alert("CT-0981", center=center)
    history = stored_alert("CT-0982", center=center)
    Alert.objects.filter(pk=history.pk).update(historical=True)
    page = clinician_client.get("/patients/").content.decode()
    assert f'href="/alerts/{current.pk}/"' in page
    assert f'href="/alerts/{history.pk}/"' not in page
    assert list(Alert.objects.active_work()) == [current]
