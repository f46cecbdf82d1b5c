"""The clinical vocabulary, once: responses, MRD and CD19 status, events, pre-emptive therapy
categories and agents (CLINICAL.md sections 2–3). The stored values are these `TextChoices`'
values; the models, the validation, the timeline (monitoring) and the analyses name them from
here. Plain constants too (no model, no database), so the pure core may import this module.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Response(models.TextChoices):
    CR = "CR", _("Complete remission (CR)")
    CRI = "CRi", _("CR with incomplete count recovery (CRi)")
    PR = "PR", _("Partial remission (PR)")
    NR = "NR", _("No response (NR)")
    PD = "PD", _("Progressive disease (PD)")
    NE = "NE", _("Not evaluable")


# Plain strings (the stored values), as the pure core compares them.
CR, CRI, PR, NR, PD, NE = RESPONSES = tuple(r.value for r in Response)
REMISSION = frozenset({CR, CRI})


class Mrd(models.TextChoices):
    NEGATIVE = "negative", _("MRD negative")
    POSITIVE = "positive", _("MRD positive")
    UNKNOWN = "unknown", _("MRD unknown")


class Event(models.TextChoices):
    RELAPSE = "relapse", _("Relapse")
    DEATH = "death", _("Death")
    HSCT = "hsct", _("Allogeneic HSCT")
    LAST_FOLLOWUP = "last_followup", _("Last follow-up contact")


RELAPSE, DEATH, HSCT, LAST_FOLLOWUP = EVENT_KINDS = tuple(e.value for e in Event)


class Cd19(models.TextChoices):
    POSITIVE = "positive", _("CD19-positive")
    NEGATIVE = "negative", _("CD19-negative")
    UNKNOWN = "unknown", _("CD19 status unknown")


class TherapyCategory(models.TextChoices):
    ANTI_LEUKEMIC = "anti_leukemic", _("Anti-leukemic")
    IMMUNOMODULATORY = "immunomodulatory", _("Immunomodulatory")
    OTHER = "other", _("Other")


ANTI_LEUKEMIC, IMMUNOMODULATORY, OTHER = tuple(c.value for c in TherapyCategory)


class Agent(models.TextChoices):
    CHEMOTHERAPY = "chemotherapy", _("Chemotherapy")
    TARGETED = "targeted", _("Targeted agent")
    SECOND_CART = "second_cart", _("Second CAR-T infusion")
    INTERFERON = "interferon", _("Interferon")
    IL2 = "il2", _("Interleukin-2")
    OTHER = "other", _("Other")


class Outcome(models.TextChoices):
    """How a hematologist closed an alert (monitoring's Alert.outcome): a pre-emptive therapy
    started (its category's value), observation, or not relevant."""

    ANTI_LEUKEMIC = "anti_leukemic", _("Anti-leukemic pre-emption started")
    IMMUNOMODULATORY = "immunomodulatory", _("Immunomodulatory therapy started")
    OBSERVATION = "observation", _("Observation")
    NOT_RELEVANT = "not_relevant", _("Not relevant")


# The outcomes that start a pre-emptive therapy (their value is its category).
PREEMPTION_OUTCOMES = (ANTI_LEUKEMIC, IMMUNOMODULATORY)

# Which category each agent belongs to, as the study grouped them ("other" has none).
AGENT_CATEGORY = {
    Agent.CHEMOTHERAPY.value: ANTI_LEUKEMIC,
    Agent.TARGETED.value: ANTI_LEUKEMIC,
    Agent.SECOND_CART.value: ANTI_LEUKEMIC,
    Agent.INTERFERON.value: IMMUNOMODULATORY,
    Agent.IL2.value: IMMUNOMODULATORY,
}
