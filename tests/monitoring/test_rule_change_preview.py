"""Previewing a rule-parameter change: what it would raise, withdraw or keep, written nowhere,
and exactly what saving the version then does (``rule_parameters_publish``), on the demo cohort.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from html import unescape

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from demo.cohort import REFERENCE_TODAY
from demo.load import demo_cohort_load
from monitoring.models import ACTIVE_STATUSES, OPEN, WITHDRAWN, Alert, AlertEvent, RuleParameterSet
from monitoring.params import RuleParams
from monitoring.preview import KEEP, RAISE, WITHDRAW, rule_change_preview
from monitoring.services import rule_parameters_publish
from patients.models import Center
from tests.factories import UserFactory

# After the demo cohort's last date (30 June 2026): "today" for the preview and for the save.
TODAY = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _state(center=None) -> dict[tuple[str, str, int], str]:
    """Every alert's status; with a center, of that center's patients only."""
    alerts = Alert.objects.select_related("patient")
    if center is not None:
        alerts = alerts.filter(patient__center=center)
    return {(a.patient.study_id, a.rule, a.infusion_number): a.status for a in alerts}


def _what_saving_did(before: dict, after: dict) -> dict[str, set]:
    keys = set(before) | set(after)
    return {
        RAISE: {k for k in keys if after.get(k) == OPEN and before.get(k) in (None, WITHDRAWN)},
        WITHDRAW: {
            k for k in keys if before.get(k) in ACTIVE_STATUSES and after.get(k) == WITHDRAWN
        },
        KEEP: {k for k in keys if before.get(k) in ACTIVE_STATUSES and after[k] in ACTIVE_STATUSES},
    }


def _values(params: RuleParams) -> dict:
    data = params.to_dict()
    data.pop("version")
    return {k: (Decimal(v) if isinstance(v, str) else v) for k, v in data.items()}


@pytest.mark.django_db
def test_the_preview_equals_what_saving_the_version_does_on_the_demo_cohort(tmp_path):
    with time_machine.travel(TODAY, tick=False):
        demo_cohort_load(today=REFERENCE_TODAY, live=False)
        alpha = Center.objects.get(code="alpha")
        admin = UserFactory(username="rules-admin", center=None)
        scenarios = [
            # A 60-day window at > 5 cells/µL: some early alerts go, late ones become early.
            (alpha, RuleParams(version="alpha-proposal", window_days=60, bcell_threshold=5)),
            # A registry-wide change: beta follows it, alpha keeps its own set.
            (
                None,
                RuleParams(
                    version="registry-proposal",
                    window_days=21,
                    require_confirmation=True,
                    mrd_flow_threshold_pct=Decimal("1"),
                    mrd_ngs_threshold=Decimal("0.01"),
                ),
            ),
            # Back to the study's definition at alpha.
            (alpha, RuleParams(version="alpha-study")),
        ]
        for center, proposed in scenarios:
            n_sets = RuleParameterSet.objects.count()
            n_events = AlertEvent.objects.count()
            everything = _state()
            before = _state(center)
            preview = rule_change_preview(center=center, params=proposed)
            # Nothing written.
            assert _state() == everything
            assert AlertEvent.objects.count() == n_events
            assert RuleParameterSet.objects.count() == n_sets
            rule_parameters_publish(center=center, user=admin, values=_values(proposed))
            did = _what_saving_did(before, _state(center))
            for action in (RAISE, WITHDRAW, KEEP):
                assert preview.keys(action) == did[action], (center, action)
            assert did[RAISE] and did[WITHDRAW] and did[KEEP], center  # each path exercised


@pytest.mark.django_db
def test_check_timeline_all_prints_the_preview(tmp_path, capsys):
    with time_machine.travel(TODAY, tick=False):
        demo_cohort_load(today=REFERENCE_TODAY, live=False)
        proposed = tmp_path / "proposed.json"
        proposed.write_text(json.dumps({"version": "alpha-60", "window_days": 60}))
        call_command("check_timeline", "--center", "alpha", "--params", str(proposed), "--all")
        printed = json.loads(capsys.readouterr().out)
        expected = rule_change_preview(
            center=Center.objects.get(code="alpha"),
            params=RuleParams(version="alpha-60", window_days=60),
        ).to_dict()
        assert printed == json.loads(json.dumps(expected))
        assert printed["center"] == "alpha" and printed["n_patients"] > 0
        early = next(r for r in printed["by_rule"] if r["rule"] == "early_regeneration")
        assert early[RAISE] and all(s.startswith("DEMO-") for s in early[RAISE])
        with pytest.raises(CommandError, match="--all needs --center"):
            call_command("check_timeline", "--all")
        with pytest.raises(CommandError, match="no center with the code 'gamma'"):
            call_command("check_timeline", "--all", "--center", "gamma")


ADMIN_FORM = {
    "window_days": "60",
    "bcell_threshold": "0",
    "bcell_pct_threshold": "",
    "aplasia_by_day": "28",
    "count_due_days": "7",
    "mrd_flow_threshold_pct": "0.01",
    "mrd_ngs_threshold": "0.0001",
    "note": "A 60-day window",
}


@pytest.fixture
def superuser(db):
    user = UserFactory(username="root", center=None)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.mark.django_db
def test_admin_preview_shows_the_changes_saves_nothing_and_then_saves_as_shown(
    client, superuser, frozen_now
):
    from monitoring.services import alerts_sync
    from tests.analytics.test_dataset import infused_patient

    center = Center.objects.create(code="alpha", name="Center Alpha", time_zone="Europe/Berlin")
    late = infused_patient(center=center, bcells={7: None, 50: 8}, study_id="CT-LATE")
    early = infused_patient(center=center, bcells={7: None, 30: 8}, study_id="CT-EARLY")
    for patient in (late, early):
        alerts_sync(patient=patient)
    client.force_login(superuser)
    add_url = reverse("admin:monitoring_ruleparameterset_add")
    assert 'data-testid="preview"' in client.get(add_url).content.decode()
    preview_url = reverse("admin:monitoring_ruleparameterset_preview")
    assert client.get(preview_url).status_code == 405
    events = AlertEvent.objects.count()

    response = client.post(preview_url, {**ADMIN_FORM, "center": center.pk, "_preview": "1"})

    assert response.status_code == 200
    html = response.content.decode()
    cell = lambda name: unescape(  # noqa: E731
        re.sub(r"<[^>]+>", "", re.search(rf'data-testid="{name}">(.*?)</td>', html).group(1))
    )
    assert cell("raise-early_regeneration") == "1: CT-LATE"  # day 50 is now early
    assert cell("withdraw-late_recovery") == "1: CT-LATE"
    assert cell("keep-early_regeneration") == "1: CT-EARLY"
    assert not RuleParameterSet.objects.exists() and AlertEvent.objects.count() == events
    # "Save this version" posts the same values to the add form.
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    fields.pop("csrfmiddlewaretoken", None)
    assert fields["window_days"] == "60" and fields["center"] == str(center.pk)
    assert client.post(add_url, {**fields, "_save": "1"}).status_code == 302
    saved = RuleParameterSet.objects.get(center=center, is_current=True)
    assert saved.window_days == 60
    assert Alert.objects.get(patient=late, rule="early_regeneration").status == OPEN
    assert Alert.objects.get(patient=late, rule="late_recovery").status == WITHDRAWN


@pytest.mark.django_db
def test_admin_preview_of_invalid_values_evaluates_nothing(client, superuser, frozen_now):
    center = Center.objects.create(code="alpha", name="Center Alpha", time_zone="Europe/Berlin")
    client.force_login(superuser)
    response = client.post(
        reverse("admin:monitoring_ruleparameterset_preview"),
        {**ADMIN_FORM, "center": center.pk, "mrd_flow_threshold_pct": "150"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "not valid" in html and "must not exceed 100" in html
    assert "Save this version" not in html


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["3651", "100000000"])
def test_admin_preview_refuses_a_window_beyond_ten_years(client, superuser, frozen_now, days):
    """Issue 21: the preview swept window_days=100000000; it is bounded as a saved set is."""
    center = Center.objects.create(code="alpha", name="Center Alpha", time_zone="Europe/Berlin")
    client.force_login(superuser)
    for url in (
        "admin:monitoring_ruleparameterset_preview",
        "admin:monitoring_ruleparameterset_add",
    ):
        response = client.post(
            reverse(url), {**ADMIN_FORM, "center": center.pk, "window_days": days}
        )
        assert response.status_code == 200, url  # the form again, with the message
        assert "window_days must be at most 3650 days" in response.content.decode(), url
    assert not RuleParameterSet.objects.filter(window_days=int(days)).exists()


@pytest.mark.django_db
def test_admin_preview_needs_the_right_to_add_a_version(client, clinician, frozen_now):
    clinician.is_staff = True
    clinician.save()
    client.force_login(clinician)
    response = client.post(reverse("admin:monitoring_ruleparameterset_preview"), ADMIN_FORM)
    assert response.status_code == 403


@pytest.mark.django_db
def test_the_preview_is_the_same_whatever_the_batch_size(monkeypatch):
    """Patients are read BATCH at a time; batches of 7 (the demo's 55 patients in 8) give the
    same preview, in the same order, as one batch."""
    from monitoring import preview as module

    with time_machine.travel(TODAY, tick=False):
        demo_cohort_load(today=REFERENCE_TODAY, live=False)
        proposed = RuleParams(version="batch-proposal", window_days=60, bcell_threshold=5)
        whole = rule_change_preview(center=None, params=proposed).to_dict()
        monkeypatch.setattr(module, "BATCH", 7)
        batched = rule_change_preview(center=None, params=proposed).to_dict()
    assert whole["n_patients"] == 55 and whole["items"]
    assert batched == whole
