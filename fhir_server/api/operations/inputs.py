"""The input parameters of an operation call (operations.html#executing).

With GET, each query parameter is one primitive input (a Coding written `system|code`). With POST, the
body is a Parameters resource, whose parts may also carry complex values and resources; query parameters
add to it. Every name must be one the operation declares, and a name it takes once must come once.
"""

from __future__ import annotations

import re
from datetime import date

from fhir_server.api.messages import FhirRequest
from fhir_server.fhir.errors import bad_request, error
from fhir_server.fhir.models import validate_resource

_FORMAT_PARAMETERS = frozenset({"_format", "_pretty"})
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Inputs:
    def __init__(self, req: FhirRequest, declared: frozenset[str], repeating: frozenset[str] = frozenset(),
                 unsupported: frozenset[str] = frozenset()) -> None:
        self.parts: list[dict] = [{"name": k, "valueString": v} for k, v in req.params
                                  if k not in _FORMAT_PARAMETERS]
        if req.method == "POST":
            body = req.body
            if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
                raise bad_request("the body of an operation POST is a Parameters resource")
            self.parts += [p for p in body.get("parameter") or [] if isinstance(p, dict)]
        names = [p.get("name") if isinstance(p.get("name"), str) else repr(p.get("name")) for p in self.parts]
        refused = sorted({n for n in names if n in unsupported})
        if refused:
            raise error(422, "not-supported", f"{', '.join(refused)}: declared by the operation's definition, "
                                              "not supported by this server", *refused)
        unknown = sorted({n for n in names if n not in declared})
        if unknown:
            raise bad_request(f"this operation does not take {', '.join(unknown)}; it takes "
                              f"{', '.join(sorted(declared))}", *unknown)
        twice = sorted({n for n in names if names.count(n) > 1 and n not in repeating})
        if twice:
            raise bad_request(f"{', '.join(twice)} may be given once", *twice)

    def names(self) -> set[str]:
        return {p["name"] for p in self.parts}

    def pairs(self) -> list[tuple[str, str]]:
        """Every primitive input as (name, text), in order: what a GET would have had as its query."""
        return [(p["name"], text) for p in self.parts for key, value in p.items()
                if key.startswith("value") and isinstance(value, str | int | float | bool)
                for text in [_as_text(value)]]

    def _parts(self, name: str) -> list[dict]:
        return [p for p in self.parts if p.get("name") == name]

    def text(self, name: str) -> str | None:
        """A primitive input as its text (valueString, valueUri, valueCode...)."""
        for part in self._parts(name):
            for key, value in part.items():
                if key.startswith("value") and isinstance(value, str | int | float | bool):
                    return _as_text(value)
            raise bad_request(f"{name} takes a primitive value", name)
        return None

    def texts(self, name: str) -> list[str]:
        return [text for key, text in self.pairs() if key == name]

    def boolean(self, name: str) -> bool | None:
        text = self.text(name)
        if text is None:
            return None
        if text not in ("true", "false"):
            raise bad_request(f"{name} is true or false, not {text!r}", name)
        return text == "true"

    def integer(self, name: str) -> int | None:
        text = self.text(name)
        if text is None:
            return None
        if not (text.isascii() and text.isdigit()):
            raise bad_request(f"{name} is a non-negative integer, not {text!r}", name)
        return int(text)

    def day(self, name: str) -> date | None:
        """A date input, written YYYY-MM-DD (datatypes.html#date, a full date)."""
        text = self.text(name)
        if text is None:
            return None
        try:
            if not _FULL_DATE.fullmatch(text):
                raise ValueError
            return date.fromisoformat(text)
        except ValueError:
            raise bad_request(f"{name} is a date written YYYY-MM-DD, not {text!r}", name) from None

    def resource(self, name: str, resource_type: str) -> dict | None:
        for part in self._parts(name):
            resource = part.get("resource")
            if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
                raise bad_request(f"{name} takes a {resource_type} resource (in a POST's Parameters)", name)
            return validate_resource(resource, resource_type)
        return None

    def reference(self, name: str) -> str | None:
        """A Reference input's literal reference: valueReference.reference in a POST, the text in a query."""
        for part in self._parts(name):
            if "valueReference" in part:
                target = part["valueReference"].get("reference") if isinstance(part["valueReference"], dict) \
                    else None
                if not isinstance(target, str) or not target:
                    raise bad_request(f"{name} takes a Reference with a literal reference", name)
                return target
            return self.text(name)
        return None

    def coding(self, name: str) -> dict | None:
        """A Coding input: valueCoding in a POST, `system|code` in a query."""
        for part in self._parts(name):
            if "valueCoding" in part:
                return _coding(part["valueCoding"], name)
            text = self.text(name) or ""
            system, bar, code = text.rpartition("|")
            if not bar or not code:
                raise bad_request(f"{name} takes a Coding, written system|code in a query", name)
            return {"system": system, "code": code} if system else {"code": code}
        return None

    def codings(self, system: str | None) -> list[dict]:
        """The codings a terminology operation is asked about: `code` (in `system`, with `display`), a
        `coding` (in `system` when it names none), or a `codeableConcept`'s; 400 unless exactly one."""
        given = [n for n in ("code", "coding", "codeableConcept") if n in self.names()]
        if len(given) != 1:
            raise bad_request("give one of code (with system), coding or codeableConcept", *given or ["code"])
        if given[0] == "code":
            return [{"system": system, "code": self.text("code"), "display": self.text("display")}]
        if given[0] == "coding":
            coding = self.coding("coding") or {}
            return [{**coding, "system": coding.get("system") or system}]
        return (self.codeable_concept("codeableConcept") or {})["coding"]

    def codeable_concept(self, name: str) -> dict | None:
        for part in self._parts(name):
            concept = part.get("valueCodeableConcept")
            codings = concept.get("coding") if isinstance(concept, dict) else None
            if not isinstance(codings, list) or not codings:
                raise bad_request(f"{name} takes a CodeableConcept with codings (in a POST's Parameters)", name)
            return {**concept, "coding": [_coding(c, name) for c in codings]}
        return None


def required(value: str | None, name: str) -> str:
    """An input the operation cannot do without; 400 naming it when it is missing."""
    if not value:
        raise bad_request(f"{name} is required", name)
    return value


def _coding(coding: object, name: str) -> dict:
    """A Coding with a code, and strings where it has a system, version or display; else 400."""
    if (not isinstance(coding, dict) or not isinstance(coding.get("code"), str) or not coding["code"]
            or any(not isinstance(coding.get(k), str) for k in ("system", "version", "display") if k in coding)):
        raise bad_request(f"{name}: a Coding needs a code, and its system, version and display are strings", name)
    return coding


def _as_text(value: str | int | float | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def parameters(*parts: dict) -> dict:
    """A Parameters resource (parameters.html) of the given parts, leaving out those without a value."""
    return {"resourceType": "Parameters",
            "parameter": [p for p in parts if any(k != "name" and v is not None for k, v in p.items())]}
