"""The denominator exclusions CMS122 and CMS165 share (their specifications' "Denominator Exclusions").

In our words: a member is left out who is in hospice care at any time in the period; who receives
palliative care in the period; or who is 66 or older at the period's end, shows frailty in the period, and
either has an advanced illness or takes a medicine for dementia in the period or the year before it. The
measures' nursing-home criterion (66 or older, living long term in a nursing home) is not evaluated: the
records we receive carry no residence, and docs/measures.md says so. The codes are the program's ValueSets
in profiles/ (cw-hospice, cw-palliative-care, cw-frailty, cw-advanced-illness, cw-dementia-medication),
each a subset of the eCQM value set its description names.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.care.candidates import months_before
from fhir_server.care.measures.clinical import Codes, Member, value_set
from fhir_server.care.measures.report import Period
from fhir_server.store.terminology import StoredTerminology

FRAIL_AGE = 66


@dataclass(frozen=True)
class Exclusions:
    hospice: Codes
    palliative: Codes
    frailty: Codes
    advanced_illness: Codes
    dementia_medication: Codes

    @classmethod
    def load(cls, terminology: StoredTerminology) -> Exclusions:
        return cls(*(value_set(terminology, name) for name in (
            "cw-hospice", "cw-palliative-care", "cw-frailty", "cw-advanced-illness", "cw-dementia-medication")))

    def codes(self) -> Codes:
        return self.hospice | self.palliative | self.frailty | self.advanced_illness | self.dementia_medication

    def excluded(self, member: Member, period: Period) -> str | None:
        """The record that excludes the member, when one does."""
        hospice = member.evidence(self.hospice, period.start, period.end)
        if hospice:
            return hospice
        palliative = member.evidence(self.palliative, period.start, period.end)
        if palliative:
            return palliative
        return self.frail_and_ill(member, period)

    def frail_and_ill(self, member: Member, period: Period) -> str | None:
        """66 or older with frailty in the period and an advanced illness or dementia medicine in the period
        or the year before: the frailty record stands for the exclusion."""
        age = member.age_on(period.end)
        if age is None or age < FRAIL_AGE:
            return None
        frail = member.evidence(self.frailty, period.start, period.end)
        ill = member.evidence(self.advanced_illness | self.dementia_medication, months_before(period.start, 12),
                              period.end)
        return frail if frail and ill else None
