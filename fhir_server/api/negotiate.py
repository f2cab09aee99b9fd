"""Content negotiation (http.html#mime-type, http.html#parameters): JSON in, JSON out, _pretty.

XML is refused with a clear status: through fhir.resources' R4B XML, 15 of the 242 official examples of
tests/data/r4-examples come back with their narrative rewritten, so serving XML would be unfaithful.
"""

from __future__ import annotations

from decimal import Decimal

import orjson

from fhir_server.fhir import jsonio
from fhir_server.fhir.errors import FhirError, Issue, bad_request

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "text/json"}
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
_XML_FORMATS = {"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"}
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"


def _media_type(header: str) -> str:
    return header.split(";")[0].strip().lower()


def check_accept(accept: str | None, format_param: str | None, also: frozenset[str] = frozenset()) -> None:
    """406 when the client can only take a format we do not write (FHIR JSON, or one of `also` the operation
    called answers in)."""
    if format_param is not None:
        fmt = format_param.strip().lower()
        if fmt in _XML_FORMATS:
            raise _xml(406, "_format=xml: this server writes JSON only (application/fhir+json)")
        if fmt not in _JSON_FORMATS:
            raise FhirError(406, [Issue("not-supported", f"unknown _format {format_param!r}")])
        return
    if not accept:
        return
    types = {_media_type(part) for part in accept.split(",")}
    if types & (_JSON_TYPES | also | {"*/*", "application/*", ""}):
        return
    if types & _XML_FORMATS:
        raise _xml(406, "Accept asks for XML: this server writes JSON only (application/fhir+json)")
    raise FhirError(406, [Issue("not-supported", f"cannot answer in {accept!r}; this server writes {FHIR_JSON}")])


def _xml(status: int, message: str) -> FhirError:
    return FhirError(status, [Issue("not-supported", message)])


def parse_body(content_type: str | None, body: bytes, method: str) -> object:
    """Decode a request body by its Content-Type; 415 for formats we do not read."""
    if not body:
        return None
    media = _media_type(content_type or FHIR_JSON)
    if media == FORM:
        return body
    if media in _XML_FORMATS:
        raise _xml(415, "XML request bodies are not supported; send application/fhir+json")
    if media not in _JSON_TYPES and media != JSON_PATCH:
        raise FhirError(415, [Issue("not-supported", f"unsupported Content-Type {media!r}; send {FHIR_JSON}")])
    if media == JSON_PATCH and method != "PATCH":
        raise FhirError(415, [Issue("not-supported", f"{JSON_PATCH} is only accepted by PATCH")])
    if method == "PATCH" and media != JSON_PATCH:
        raise FhirError(415, [Issue("not-supported", f"PATCH takes {JSON_PATCH} (FHIRPath Patch is not supported)")])
    try:
        return jsonio.loads(body)
    except jsonio.JSONDecodeError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None


class StoredJSON:
    """JSON text of a stored resource, spliced into a response body without parsing it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _splice(value: object) -> object:
    if isinstance(value, StoredJSON):
        return orjson.Fragment(value.text)
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _parse(value: object) -> object:
    if isinstance(value, StoredJSON):
        return jsonio.loads(value.text)
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def render(body: dict | None, raw: str | None, pretty: bool) -> bytes:
    """Serialise a response body; stored JSON text is sent as it is unless _pretty asks for indentation."""
    if raw is not None:
        return orjson.dumps(jsonio.loads(raw), default=_parse, option=orjson.OPT_INDENT_2) if pretty else raw.encode()
    if body is None:
        return b""
    if pretty:
        return orjson.dumps(body, default=_parse, option=orjson.OPT_INDENT_2)
    return orjson.dumps(body, default=_splice)
