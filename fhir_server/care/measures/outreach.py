"""cw-outreach: the program's calls and how many reached someone, per coordinator (docs/measures.md).

A proportion of calls: the outreach calls (care/outreach.py's Communications) made in the period, of which
those that made contact (the member or practice reached, declined or asked for a callback). The calls of each
coordinator are a stratum, so the stratum's denominator is their outreach attempts and its score their
reach rate.
"""

from __future__ import annotations

from fhir_server.care.measures.report import Evaluation, Tally
from fhir_server.care.measures.subjects import NO_STRATUM
from fhir_server.care.outreach import CONTACT_MADE, OUTCOME_SYSTEM, OUTREACH_CALL
from fhir_server.care.program import codings, every

URL = "https://careweave.example.org/fhir/Measure/cw-outreach"


def outreach(evaluation: Evaluation) -> list[Tally]:
    period = evaluation.period
    tally = Tally({code: set() for code in ("initial-population", "denominator", "numerator")})
    for call in every(evaluation.repo, "Communication", [
            ("category", f"{OUTREACH_CALL['system']}|{OUTREACH_CALL['code']}"),
            ("sent", f"ge{period.start}"), ("sent", f"le{period.end}")]):
        if call.get("status") == "entered-in-error" or not evaluation.members.includes(
                (call.get("subject") or {}).get("reference")):
            continue
        reference = f"Communication/{call['id']}"
        tally.populations["initial-population"].add(reference)
        tally.populations["denominator"].add(reference)
        tally.strata[reference] = (call.get("sender") or {}).get("reference") or NO_STRATUM
        tally.add_evidence(reference, reference)
        if {c for s, c in codings(call.get("statusReason")) if s == OUTCOME_SYSTEM} & CONTACT_MADE:
            tally.populations["numerator"].add(reference)
    return [tally]
