"""The compiled FHIRPath engine (fhir_server/fhir/fhirpath_engine) on what HL7's suite covers thinly: typed
navigation of FHIR JSON, primitives with extensions, three-valued logic, resolve(), the environment
variables in a Bundle, invariant verdicts, and its errors. Every R4 constraint expression must compile."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from fhir_server.fhir.definitions import DIRECTORY
from fhir_server.fhir.fhirpath_engine import Context, FhirPathError, compile_path
from fhir_server.fhir.fhirpath_engine.quantity import Quantity
from fhir_server.fhir.fhirpath_engine.temporal import Date

OBSERVATION = {
    "resourceType": "Observation",
    "id": "weight",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "effectiveDateTime": "2016-03-28T09:30:00+01:00",
    "valueQuantity": {"value": Decimal("185"), "unit": "lbs", "system": "http://unitsofmeasure.org",
                      "code": "[lb_av]"},
    "component": [
        {"code": {"text": "systolic"}, "valueQuantity": {"value": 120, "code": "mm[Hg]"}},
        {"code": {"text": "note"}, "valueString": "sitting"},
    ],
    "extension": [{"url": "http://example.org/age", "valueAge": {"value": 41, "code": "a"}}],
}
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "contained": [{"resourceType": "Organization", "id": "org", "name": "Acme"}],
    "managingOrganization": {"reference": "#org"},
    "name": [{"family": "Windsor", "given": [None, "James"],
              "_given": [{"extension": [{"url": "http://example.org/syllables", "valueInteger": 5}]}]}],
    "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                  "valueCode": "unknown"}]},
    "active": True,
}


def evaluate(expression: str, focus: object = OBSERVATION, focus_type: str | None = None,
             context: Context | None = None) -> list:
    resource = focus if isinstance(focus, dict) and "resourceType" in focus else OBSERVATION
    context = context or Context(resource, resource)
    return compile_path(expression)(focus, focus_type or focus.get("resourceType", ""), context)  # type: ignore[union-attr]


# -- typed navigation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expression", "expected"), [
    ("value.unit", ["lbs"]),
    ("value is Quantity", [True]),
    ("value.is(FHIR.Quantity)", [True]),
    ("value.type().name", ["Quantity"]),
    ("(value as Quantity).value > 100", [True]),
    ("value.ofType(string).exists()", [False]),
    ("valueQuantity.exists()", [False]),  # choice elements are named without their type (fhirpath.html#polymorphism)
    ("value = 185 '[lb_av]'", [True]),
    ("value > 80 'kg'", [True]),  # [lb_av] and kg are compared in grams
    ("component.value.ofType(Quantity).code", ["mm[Hg]"]),
    ("component.value.ofType(string)", ["sitting"]),
    ("component.where(value is string).code.text", ["note"]),
    ("extension('http://example.org/age').value is Age", [True]),
    ("extension('http://example.org/age').value is Quantity", [True]),
    ("effective.type().name", ["dateTime"]),
    ("effective > @2016-03-28T08:00:00Z", [True]),  # 09:30+01:00 is 08:30Z
    ("effective = @2016-03-28", []),  # different precision: unknown
    ("effective.toDate() = @2016-03-28", [True]),
    ("is(DomainResource) and is(Resource) and is(Observation)", [True]),
    ("Observation.status", ["final"]),
    ("DomainResource.status", ["final"]),
    ("status.is(code) and status.is(string) and status.as(string).empty()", [True]),
])
def test_typed_navigation(expression: str, expected: list) -> None:
    assert evaluate(expression) == expected


def test_a_backbone_element_is_a_focus_by_its_path() -> None:
    component = OBSERVATION["component"][0]
    assert evaluate("value.code", component, "Observation.component") == ["mm[Hg]"]
    assert evaluate("type().name", component, "Observation.component") == ["BackboneElement"]
    reference_range = {"low": {"value": 1, "code": "mm[Hg]"}}  # Observation.component.referenceRange
    assert evaluate("low.code", reference_range, "#Observation.referenceRange") == ["mm[Hg]"]


def test_an_element_path_focus_has_the_element_type() -> None:
    assert evaluate("family.length()", PATIENT["name"][0], "Patient.name") == [7]


def test_contained_resources_are_typed_by_resource_type() -> None:
    assert evaluate("contained.ofType(Organization).name", PATIENT) == ["Acme"]
    assert evaluate("contained.all($this is Organization and $this is DomainResource)", PATIENT) == [True]
    assert evaluate("name", PATIENT["contained"][0], "Resource") == ["Acme"]


# -- primitives and their extensions ---------------------------------------------------------------------
@pytest.mark.parametrize(("expression", "expected"), [
    ("name.given.count()", [2]),  # the null given still exists: it has an extension
    ("name.given.select(hasValue())", [False, True]),
    ("name.given.first().extension.value", [5]),
    ("name.given.first().getValue().empty()", [True]),
    ("name.given.last().getValue()", ["James"]),
    ("name.given.where(hasValue()).count()", [1]),
    ("birthDate.exists() and birthDate.hasValue().not()", [True]),
    ("birthDate.extension('http://hl7.org/fhir/StructureDefinition/data-absent-reason').value", ["unknown"]),
    ("birthDate.children().count()", [1]),
    ("active.hasValue() and name.hasValue().not()", [True]),
])
def test_primitive_extensions(expression: str, expected: list) -> None:
    assert evaluate(expression, PATIENT) == expected


def test_ele_1_on_a_primitive_with_only_extensions() -> None:
    """ele-1 `hasValue() or (children().count() > id.count())` holds: the extension is a child."""
    assert evaluate("birthDate.all(hasValue() or (children().count() > id.count()))", PATIENT) == [True]


# -- three-valued logic (fhirpath.html#boolean-logic) ----------------------------------------------------
_T, _F, _E = "true", "false", "{}"


@pytest.mark.parametrize(("left", "right", "and_", "or_", "xor", "implies"), [
    (_T, _T, [True], [True], [False], [True]),
    (_T, _F, [False], [True], [True], [False]),
    (_T, _E, [], [True], [], []),
    (_F, _T, [False], [True], [True], [True]),
    (_F, _F, [False], [False], [False], [True]),
    (_F, _E, [False], [], [], [True]),
    (_E, _T, [], [True], [], [True]),
    (_E, _F, [False], [], [], []),
    (_E, _E, [], [], [], []),
])
def test_three_valued_logic(left: str, right: str, and_: list, or_: list, xor: list, implies: list) -> None:
    assert evaluate(f"{left} and {right}") == and_
    assert evaluate(f"{left} or {right}") == or_
    assert evaluate(f"{left} xor {right}") == xor
    assert evaluate(f"{left} implies {right}") == implies


def test_implies_with_an_absent_element() -> None:
    # An absent element is empty, so the invariant holds whatever the right side is.
    assert evaluate("dataAbsentReason.exists() implies value.empty()") == [True]
    assert evaluate("value.exists() implies dataAbsentReason.exists()") == [False]
    assert evaluate("bodySite.exists() implies {}") == [True]


def test_short_circuit_skips_the_side_that_would_fail() -> None:
    assert evaluate("false and (1 | 2).not()") == [False]
    assert evaluate("true or (1 | 2).not()") == [True]
    assert evaluate("false implies (1 | 2).not()") == [True]
    with pytest.raises(FhirPathError, match="not\\(\\) expects a single Boolean, got 2 items"):
        evaluate("true and (1 | 2).not()")


# -- resolve() and the environment (fhirpath.html#environment-variables) -----------------------------------
def test_resolve_contained_by_local_reference() -> None:
    assert evaluate("managingOrganization.resolve().name", PATIENT) == ["Acme"]
    assert evaluate("managingOrganization.resolve() is Organization", PATIENT) == [True]
    assert evaluate("'#'.resolve().id", PATIENT) == ["p1"]  # `#` is the containing resource itself


def test_resolve_asks_the_callback_first() -> None:
    practitioner = {"resourceType": "Practitioner", "id": "dr"}
    patient = {**PATIENT, "generalPractitioner": [{"reference": "Practitioner/dr"}, {"reference": "Nope/1"}]}
    context = Context(patient, patient, resolve=lambda ref: practitioner if ref == "Practitioner/dr" else None)
    assert evaluate("generalPractitioner.resolve().id", patient, context=context) == ["dr"]
    assert evaluate("generalPractitioner.resolve().id", patient) == []  # nothing resolves it: empty


BUNDLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
         "resource": {"resourceType": "Patient", "id": "pat", "name": [{"family": "Chalmers"}]}},
        {"fullUrl": "http://example.org/fhir/Observation/obs",
         "resource": {"resourceType": "Observation", "id": "obs", "status": "final",
                      "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
                      "performer": [{"reference": "Practitioner/dr"}]}},
        {"fullUrl": "http://example.org/fhir/Practitioner/dr",
         "resource": {"resourceType": "Practitioner", "id": "dr"}},
    ],
}


def test_resource_and_root_resource_in_a_bundle_entry() -> None:
    observation = BUNDLE["entry"][1]["resource"]
    context = Context(observation, BUNDLE)
    assert evaluate("%resource.id", observation, context=context) == ["obs"]
    assert evaluate("%rootResource.type", observation, context=context) == ["transaction"]
    assert evaluate("%rootResource.entry.count()", observation, context=context) == [3]
    assert evaluate("%context.status", observation, context=context) == ["final"]
    assert evaluate("subject.resolve().name.family", observation, context=context) == ["Chalmers"]
    # A relative reference is read against the base of the referring entry's fullUrl.
    assert evaluate("performer.resolve().id", observation, context=context) == ["dr"]


def test_variables() -> None:
    context = Context(OBSERVATION, OBSERVATION, variables={"limit": Decimal("100"), "codes": ["a", "final"]})
    assert evaluate("value.value > %limit", context=context) == [True]
    assert evaluate("status in %codes", context=context) == [True]
    assert evaluate("%ucum = 'http://unitsofmeasure.org' and %sct.startsWith('http://snomed')") == [True]
    assert evaluate("%`vs-observation-status` & '|' & %'ext-data-absent-reason'") == [
        "http://hl7.org/fhir/ValueSet/observation-status|http://hl7.org/fhir/StructureDefinition/data-absent-reason"]
    with pytest.raises(FhirPathError, match="unknown variable %nope"):
        evaluate("%nope")


def test_member_of_asks_the_callback() -> None:
    calls = []

    def member_of(value: object, url: str) -> bool | None:
        calls.append((value, url))
        return None if url.endswith("unknown") else value == "final"

    context = Context(OBSERVATION, OBSERVATION, member_of=member_of)
    assert evaluate("status.memberOf('http://hl7.org/fhir/ValueSet/observation-status')", context=context) == [True]
    assert evaluate("status.memberOf('http://example.org/unknown')", context=context) == []
    assert evaluate("status.memberOf('http://example.org/unknown')") == []  # no callback: unknown
    assert calls[0] == ("final", "http://hl7.org/fhir/ValueSet/observation-status")


def test_html_checks() -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Weight&nbsp;<b>185</b> lbs</p></div>'
    assert evaluate("htmlChecks()", div, "xhtml") == [True]
    for bad in ('<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>',
                '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">a</p></div>',
                '<div><p>no namespace</p></div>',
                '<div xmlns="http://www.w3.org/1999/xhtml"><p>unclosed</div>'):
        assert evaluate("htmlChecks()", bad, "xhtml") == [False], bad


# -- focus-independent subexpressions are evaluated once per evaluation ----------------------------------------
DOM_3 = ("contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | "
         "%resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#')"
         ".exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#')"
         ".exists()).not()).trace('unmatched', id).empty()")


def test_dom_3_finds_unreferenced_contained_resources() -> None:
    assert evaluate(DOM_3, PATIENT) == [True]
    orphan = {**PATIENT, "contained": [*PATIENT["contained"], {"resourceType": "Practitioner", "id": "lost"}]}
    assert evaluate(DOM_3, orphan) == [False]
    assert evaluate("contained.where(('#' + id in %resource.descendants().reference).not()).id", orphan) == ["lost"]


def test_subexpressions_that_read_the_iteration_are_evaluated_per_item() -> None:
    context = Context(OBSERVATION, OBSERVATION, variables={"two": [1, 2]})
    # where() inside aggregate() sees the aggregate's $total, so it is not shared between the items.
    assert evaluate("(1 | 2 | 3).aggregate(%two.where($this > $total).count() + $total, 0)", context=context) == [2]
    assert evaluate("(10 | 20).select(%two.select($index))", context=context) == [0, 1, 0, 1]
    assert evaluate("now() = now() and today() = today()") == [True]  # one value per evaluation


# -- computed values -------------------------------------------------------------------------------------
def test_values_the_expression_computes_are_engine_values() -> None:
    (date,) = evaluate("@2020-01-31 + 1 month")
    assert isinstance(date, Date) and str(date) == "2020-02-29"
    (weight,) = evaluate("value.value * 2 'g'")
    assert isinstance(weight, Quantity) and weight.value == 370 and weight.unit == "g"
    assert evaluate("(value.value / 2).round(1)") == [Decimal("92.5")]


# -- invariant verdicts (fhirpath.html#boolean-evaluation-of-collections) -----------------------------------
@pytest.mark.parametrize(("expression", "verdict"), [
    ("status = 'final'", True),
    ("status = 'amended'", False),
    ("bodySite.exists().not().not() and true", False),
    ("dataAbsentReason.code", True),  # empty passes
    ("status", True),  # one non-Boolean item passes
    ("{} = 1", True),
])
def test_is_true(expression: str, verdict: bool) -> None:
    assert compile_path(expression).is_true(OBSERVATION, "Observation", Context(OBSERVATION, OBSERVATION)) is verdict


def test_is_true_refuses_more_than_one_item() -> None:
    with pytest.raises(FhirPathError, match="gave 2 items where one Boolean was expected"):
        compile_path("code.coding.code | status").is_true(OBSERVATION, "Observation",
                                                          Context(OBSERVATION, OBSERVATION))


# -- errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expression", "message"), [
    ("name.given.", "syntax error at 11: expected an identifier, found end of expression"),
    ("name.where(given = 'x'", "syntax error at 22: expected ')', found end of expression"),
    ("1 +", "syntax error at 3: expected an expression, found end of expression"),
    ("name given", "syntax error at 5: expected an operator or the end of the expression, found 'given'"),
    ("'unterminated", "syntax error at 0: unexpected character \"'\""),
    ("2 /* open", "syntax error at 2: unterminated comment"),
    ("@2020-13-01", "syntax error: invalid date/time literal @2020-13-01"),
    ("name.foo()", "unknown function 'foo' at 5"),
    ("code.subsumes(%other)", "function 'subsumes' is not supported (needs a terminology server) at 5"),
    ("name.exists(1, 2)", "function 'exists' takes 0 to 1 argument(s), got 2 at 5"),
    ("name.where()", "function 'where' takes 1 argument(s), got 0 at 5"),
    ("value is Quantiti", "unknown type 'Quantiti' at 6"),
    ("value.ofType(FHIR.Nope)", "unknown type 'FHIR.Nope'"),
])
def test_compile_errors(expression: str, message: str) -> None:
    compile_path.cache_clear()
    with pytest.raises(FhirPathError) as raised:
        compile_path(expression)
    assert str(raised.value) == message


@pytest.mark.parametrize(("expression", "message"), [
    ("code.coding.code | 'x' and true", "'and' expects a single Boolean, got 2 items"),
    ("component.single()", "single() expects at most one item, got 2"),
    ("status + 1", "cannot apply '+' to String and Integer"),
    ("status < 1", "cannot compare String with Integer"),
    ("code.startsWith('x')", "startsWith() cannot be applied to CodeableConcept"),
    ("@2020-01-01 + 1 'mo'", "cannot add a quantity in 'mo' to a Date"),
    ("iif(status, 1, 2)", "iif() expects a Boolean criterion"),
    ("conformsTo('http://example.org/Profile')", "conformsTo(): no way to check conformance to "
                                                "http://example.org/Profile"),
])
def test_evaluation_errors(expression: str, message: str) -> None:
    with pytest.raises(FhirPathError) as raised:
        evaluate(expression)
    assert str(raised.value) == message


# -- every R4 invariant --------------------------------------------------------------------------------
STRUCTURE_DEFINITIONS = DIRECTORY / "structure_definitions.ndjson.gz"


def _constraint_expressions() -> dict[str, str]:
    expressions: dict[str, str] = {}
    with gzip.open(STRUCTURE_DEFINITIONS, "rt", encoding="utf-8") as lines:
        for line in lines:
            definition = json.loads(line)
            for element in definition.get("snapshot", {}).get("element", []):
                for constraint in element.get("constraint", []):
                    if "expression" in constraint:
                        expressions.setdefault(constraint["expression"], constraint["key"])
    return expressions


def test_every_r4_constraint_expression_compiles() -> None:
    expressions = _constraint_expressions()
    assert len(expressions) > 150
    failures = {}
    for expression, key in expressions.items():
        try:
            compile_path(expression)
        except FhirPathError as exc:
            failures[key] = f"{expression}: {exc}"
    assert failures == {}
