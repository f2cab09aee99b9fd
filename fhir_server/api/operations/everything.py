"""Patient/[id]/$everything (patient-operation-everything.html): the patient and their compartment, paged,
each page with the resources it refers to outside the compartment's types (practitioners, organizations,
locations, medications...) as `include` entries.

`_type` narrows the types, `_since` keeps resources changed since an instant, `start`/`end` keep resources
whose `date` parameter overlaps the care period (types without a `date` parameter are all kept), and
`_count` pages the answer with the same keyset cursors as search.
"""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs
from fhir_server.api.searching import entry, page_size, searchset
from fhir_server.fhir.definitions import resource_types
from fhir_server.fhir.errors import bad_request
from fhir_server.search.parse import Criterion, SearchQuery, parse_instant_param
from fhir_server.search.values import DateValue

_PARAMETERS = frozenset({"_since", "_type", "_count", "start", "end", "_cursor"})


def everything(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    if resource_type != "Patient":
        raise bad_request("$everything is defined on Patient only here")
    ctx.repo.read("Patient", id)  # 404 / 410 for an unknown or deleted patient
    inputs = Inputs(req, _PARAMETERS, repeating=frozenset({"_type"}))
    types = tuple(t for text in inputs.texts("_type") for t in (part.strip() for part in text.split(",")) if t)
    if any(t not in resource_types() for t in types):
        raise bad_request("_type names an unknown resource type", "_type")
    criteria = []
    since = inputs.text("_since")
    if since:
        criteria.append(Criterion("_lastUpdated", "date", (DateValue("ge", parse_instant_param("_since", since)),)))
    start, end = inputs.text("start"), inputs.text("end")
    period = (parse_instant_param("start", start).start if start else None,
              parse_instant_param("end", end).end if end else None)
    query = SearchQuery(None, tuple(criteria), types=types, compartment=("Patient", id),
                        care_period=period if start or end else None, everything=True)
    params = inputs.pairs()
    count = page_size(params, ctx)
    cursor = inputs.text("_cursor")
    page = ctx.repo.search(query, count=count, cursor=cursor)
    path = f"Patient/{id}/$everything"
    own = [(k, v) for k, v in params if k != "_cursor"]
    entries = [entry(ctx, stored, "match", None, None) for stored in page.resources]
    entries += [entry(ctx, stored, "include", None, None) for stored in page.included]
    bundle = searchset(ctx, path, own, cursor, page, entries)
    return FhirResponse(200, bundle, interaction="operation", resource_type="Patient")
