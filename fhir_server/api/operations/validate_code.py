"""$validate-code on a ValueSet (valueset-operation-validate-code.html) or a CodeSystem
(codesystem-operation-validate-code.html): whether a code, Coding or CodeableConcept is in it.

The answer is a Parameters with `result`, the code's `display` where known, and a `message` saying why
when the result is false or the given display is not the code's. A display that is neither the code's
display nor one of its designations makes the result false: R4 defines `result` as whether the concept
details supplied are valid. With `abstract` false, an abstract (notSelectable) code is not valid. A code
of a system not held here cannot be checked: false, and the message says so.
"""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.conformance import code_system, target
from fhir_server.api.operations.inputs import Inputs, parameters
from fhir_server.fhir.terminology.codesystem import CodeSystemIndex
from fhir_server.fhir.terminology.valueset import Member, Verdict, contains
from fhir_server.store.terminology import StoredTerminology

VALUE_SET_INPUTS = frozenset({"url", "valueSet", "valueSetVersion", "code", "system", "systemVersion", "display",
                              "coding", "codeableConcept", "abstract", "displayLanguage"})
CODE_SYSTEM_INPUTS = frozenset({"url", "version", "code", "display", "coding", "codeableConcept", "abstract",
                                "displayLanguage"})


def validate_code(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    terminology = StoredTerminology(ctx.repo)
    if resource_type == "ValueSet":
        inputs = Inputs(req, VALUE_SET_INPUTS, unsupported=frozenset({"context", "date"}))
        value_set = target(ctx, terminology, inputs, "ValueSet", id, resource="valueSet", version="valueSetVersion")
        codings = inputs.codings(inputs.text("system"))

        def check(coding: dict) -> Verdict:
            if not coding.get("system"):
                return Verdict(False, message=f"the code {coding.get('code')!r} has no system")
            return contains(value_set, terminology, coding["system"], coding["code"])
    else:
        inputs = Inputs(req, CODE_SYSTEM_INPUTS, unsupported=frozenset({"codeSystem", "date"}))
        url = inputs.text("url")
        index = code_system(ctx, terminology, inputs, id, url, inputs.text("version"), "url")
        codings = inputs.codings(index.url)

        def check(coding: dict) -> Verdict:
            return _in_code_system(index, coding)
    verdicts = [(coding, check(coding)) for coding in codings]
    coding, verdict = next(((c, v) for c, v in verdicts if v.result), verdicts[0])
    display_given = coding.get("display")
    member = verdict.member
    result, message = bool(verdict.result), verdict.message
    if result and member is not None and member.abstract and inputs.boolean("abstract") is False:
        result, message = False, f"{member.system}#{member.code} is abstract, and abstract codes were not allowed"
    elif result and member is not None and display_given and not _display_fits(display_given, member):
        result = False
        message = (f"the display {display_given!r} is not that of {member.system}#{member.code}"
                   + (f": it is {member.display!r}" if member.display else ""))
    if not result and not message:
        message = "; ".join(v.message for _, v in verdicts if v.message) or "the code is not valid here"
    return FhirResponse(200, parameters(
        {"name": "result", "valueBoolean": result},
        {"name": "message", "valueString": message or None},
        {"name": "display", "valueString": member.display if member is not None else None},
    ), interaction="operation", resource_type=resource_type)


def _in_code_system(index: CodeSystemIndex, coding: dict) -> Verdict:
    if coding.get("system") not in (None, index.url):
        return Verdict(False, message=f"the coding's system {coding['system']} is not {index.url}")
    concept = index.get(coding.get("code") or "")
    if concept is None:
        return Verdict(False, message=f"{coding.get('code')!r} is not a code of {index.url}")
    return Verdict(True, Member(index.url or "", concept.code, concept.display, index.version, concept.abstract,
                                concept.inactive, concept.designations))


def _display_fits(display: str, member: Member) -> bool:
    """Whether `display` is the code's display or one of its designations (any display fits a code whose
    displays are not known here)."""
    known = [k for k in (member.display, *(d.get("value") for d in member.designations)) if isinstance(k, str)]
    return not known or any(k.casefold() == display.casefold() for k in known)
