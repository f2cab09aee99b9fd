"""FHIR operations (operations.html), one module each, all registered here.

Each entry says where the operation may be called (the resource types, and whether at type and instance
level), whether it changes nothing (then GET may call it too; operationdefinition.html#affectsState),
and the canonical URL of its OperationDefinition, which the CapabilityStatement lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations import careplan
from fhir_server.api.operations.assign_education import assign_education
from fhir_server.api.operations.assign_outreach import assign_outreach
from fhir_server.api.operations.care_candidates import care_candidates
from fhir_server.api.operations.care_gaps import care_gaps
from fhir_server.api.operations.enroll import disenroll_operation, enroll_operation
from fhir_server.api.operations.evaluate_measure import evaluate_measure_operation
from fhir_server.api.operations.everything import everything
from fhir_server.api.operations.expand import expand_operation
from fhir_server.api.operations.log_outreach import log_outreach
from fhir_server.api.operations.lookup import lookup
from fhir_server.api.operations.medication_review import medication_review
from fhir_server.api.operations.participation import participation
from fhir_server.api.operations.pcp_report import pcp_report
from fhir_server.api.operations.record_teach_back import record_teach_back
from fhir_server.api.operations.subsumes import subsumes
from fhir_server.api.operations.translate import translate_operation
from fhir_server.api.operations.validate import validate
from fhir_server.api.operations.validate_code import validate_code
from fhir_server.api.operations.worklist import worklist
from fhir_server.care.program import BASE
from fhir_server.fhir.definitions import resource_types

Handler = Callable[[FhirRequest, Context, str, str | None], FhirResponse]
_HL7 = "http://hl7.org/fhir/OperationDefinition/"
_PROGRAM = BASE + "OperationDefinition/"  # the program's own, in profiles/


@dataclass(frozen=True)
class Operation:
    name: str
    resource_types: tuple[str, ...]
    type_level: bool
    instance_level: bool
    handler: Handler
    definition: str
    affects_state: bool = False
    produces: frozenset[str] = frozenset()  # media types it answers in besides FHIR JSON (Accept may ask for them)


OPERATIONS: tuple[Operation, ...] = (
    Operation("everything", ("Patient",), False, True, everything, _HL7 + "Patient-everything"),
    Operation("expand", ("ValueSet",), True, True, expand_operation, _HL7 + "ValueSet-expand"),
    Operation("validate-code", ("ValueSet",), True, True, validate_code, _HL7 + "ValueSet-validate-code"),
    Operation("validate-code", ("CodeSystem",), True, True, validate_code, _HL7 + "CodeSystem-validate-code"),
    Operation("lookup", ("CodeSystem",), True, False, lookup, _HL7 + "CodeSystem-lookup"),
    Operation("subsumes", ("CodeSystem",), True, True, subsumes, _HL7 + "CodeSystem-subsumes"),
    Operation("translate", ("ConceptMap",), True, True, translate_operation, _HL7 + "ConceptMap-translate"),
    Operation("evaluate-measure", ("Measure",), False, True, evaluate_measure_operation,
              _HL7 + "Measure-evaluate-measure"),
    Operation("validate", tuple(sorted(resource_types() - {"AuditEvent"})), True, True, validate,
              _HL7 + "Resource-validate"),
    # The care-coordination program's (docs/program.md), in the order of a member's way through it.
    Operation("care-candidates", ("Patient",), True, False, care_candidates, _PROGRAM + "care-candidates"),
    Operation("participation", ("Organization",), False, True, participation, _PROGRAM + "participation",
              affects_state=True),
    Operation("assign-outreach", ("Patient",), False, True, assign_outreach, _PROGRAM + "assign-outreach",
              affects_state=True),
    Operation("log-outreach", ("Patient",), False, True, log_outreach, _PROGRAM + "log-outreach",
              affects_state=True),
    Operation("enroll", ("Patient",), False, True, enroll_operation, _PROGRAM + "enroll", affects_state=True),
    Operation("disenroll", ("Patient",), False, True, disenroll_operation, _PROGRAM + "disenroll",
              affects_state=True),
    Operation("quality-check", ("CarePlan",), False, True, careplan.quality_check, _PROGRAM + "quality-check"),
    Operation("activate", ("CarePlan",), False, True, careplan.activate, _PROGRAM + "activate", affects_state=True),
    Operation("review", ("CarePlan",), False, True, careplan.review, _PROGRAM + "review", affects_state=True),
    Operation("close", ("CarePlan",), False, True, careplan.close, _PROGRAM + "close", affects_state=True),
    Operation("worklist", ("Practitioner",), False, True, worklist, _PROGRAM + "worklist"),
    Operation("care-gaps", ("Patient",), False, True, care_gaps, _PROGRAM + "care-gaps"),
    Operation("medication-review", ("Patient",), False, True, medication_review, _PROGRAM + "medication-review",
              affects_state=True),
    Operation("assign-education", ("Patient",), False, True, assign_education, _PROGRAM + "assign-education",
              affects_state=True),
    Operation("record-teach-back", ("Task",), False, True, record_teach_back, _PROGRAM + "record-teach-back",
              affects_state=True),
    Operation("pcp-report", ("Patient",), False, True, pcp_report, _PROGRAM + "pcp-report", affects_state=True,
              produces=frozenset({"application/pdf", "text/html"})),
)


def find(name: str, resource_type: str, instance: bool) -> Operation | None:
    """The operation `name` callable on `resource_type` at that level."""
    return next((op for op in OPERATIONS if op.name == name and resource_type in op.resource_types
                 and (op.instance_level if instance else op.type_level)), None)


def produced_at(path: str) -> frozenset[str]:
    """The other media types the operation a request path calls (`.../$name`) may answer in."""
    last = path.rstrip("/").rpartition("/")[2]
    if not last.startswith("$"):
        return frozenset()
    return frozenset().union(*(op.produces for op in OPERATIONS if op.name == last[1:]))


def operations_of(resource_type: str) -> list[Operation]:
    return [op for op in OPERATIONS if resource_type in op.resource_types]
