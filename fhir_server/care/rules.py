"""The program's rules on writes, which the repository runs on every create and update whatever the
interaction (plain REST, a transaction entry, a patch, an operation)."""

from __future__ import annotations

from fhir_server.care.referrals import check_transition

WRITE_RULES = {"Task": (check_transition,)}
