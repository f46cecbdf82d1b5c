"""Fixtures for the patient pages and services: one infused patient at Center Alpha."""

from datetime import date

import pytest

from patients import units
from tests.factories import InfusionFactory, PatientFactory

INFUSED = date(2025, 3, 1)  # day 0 of the fixtures' patient; FIXED_NOW (3 Nov 2025) lies after it


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: takes seconds (loads the whole demo cohort); deselect with -m 'not slow'"
    )


@pytest.fixture(autouse=True)
def _fast_password_hashing(fast_password_hashing):
    """Every patients test (tests/conftest.py)."""


@pytest.fixture
def patient(center):
    """A Center Alpha patient born 17 May 1990, with restricted identifiers, not yet infused."""
    return PatientFactory(
        center=center,
        study_id="CT-0001",
        mrn="MRN-778899",
        full_name="Erika Mustermann",
        date_of_birth=date(1990, 5, 17),
    )


@pytest.fixture
def infusion(patient):
    return InfusionFactory(patient=patient, infusion_date=INFUSED, infusion_number=1)


@pytest.fixture
def infused_patient(patient, infusion):
    return patient


def sample_data(collected_date: str, collected_time: str = "08:00", method: str = "", **entered):
    """POST data of the sample form, as the browser sends it.

    `entered` maps an analyte code to a value string, or to (value, unit, qualifier). Every
    analyte's unit select is always submitted (the browser sends its selected option).
    """
    data = {"collected_date": collected_date, "collected_time": collected_time, "method": method}
    for code, analyte in units.ANALYTES.items():
        value, unit, qualifier = "", analyte.canonical_unit, ""
        given = entered.get(code)
        if isinstance(given, tuple):
            value, unit, qualifier = given
        elif given is not None:
            value = given
        data[f"{code}-value"] = value
        data[f"{code}-unit"] = unit
        data[f"{code}-qualifier"] = qualifier
    return data
