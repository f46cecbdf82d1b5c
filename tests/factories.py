"""factory_boy factories for the clinical models, with fixed dates (never "today")."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import factory
from django.contrib.auth import get_user_model

from patients import units
from patients.models import (
    Center,
    ClinicalEvent,
    ClinicianProfile,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)

BERLIN = ZoneInfo("Europe/Berlin")


class CenterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Center
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"center{n}")
    name = factory.LazyAttribute(lambda o: f"Center {o.code}")
    time_zone = "Europe/Berlin"


PASSWORD = "pw-for-tests"  # every UserFactory user's password


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def center(self, create, extracted, **kwargs):
        if create:
            ClinicianProfile.objects.update_or_create(user=self, defaults={"center": extracted})
            self.save()


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    center = factory.SubFactory(CenterFactory, code="alpha")
    study_id = factory.Sequence(lambda n: f"CT-{n:04d}")
    sex = "F"
    date_of_birth = date(1990, 5, 17)


class InfusionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Infusion

    patient = factory.SubFactory(PatientFactory)
    infusion_date = date(2025, 3, 1)
    infusion_number = 1
    product = "CD19 CAR-T"


class LabResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabResult

    patient = factory.SubFactory(PatientFactory)
    analyte = units.PB_BCELL_ABS
    specimen = units.PB
    collected_at = datetime(2025, 3, 8, 8, 0, tzinfo=BERLIN)
    value = Decimal(0)
    unit = units.CELLS_PER_UL
    canonical_unit = units.CELLS_PER_UL
    canonical_value = factory.LazyAttribute(
        lambda o: None if o.value is None else units.to_canonical(o.analyte, o.value, o.unit)
    )


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ResponseAssessment

    patient = factory.SubFactory(PatientFactory)
    assessed_on = date(2025, 3, 29)
    response = "CR"
    mrd_status = "negative"


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClinicalEvent

    patient = factory.SubFactory(PatientFactory)
    kind = "last_followup"
    event_date = date(2025, 9, 1)


class TherapyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PreemptiveTherapy

    patient = factory.SubFactory(PatientFactory)
    start_date = date(2025, 4, 10)
    category = "anti_leukemic"
    agent = "chemotherapy"
