"""Patient/[id]/$pcp-report: the member's report for the PCP office record, stored as a FHIR document and a
DocumentReference and answered as a PDF, an HTML page or the document Bundle
(profiles/OperationDefinition-pcp-report.json; the report is made in care/pcp_report.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs
from fhir_server.api.representation import location
from fhir_server.care.candidates import load_rules
from fhir_server.care.pcp_report import page, write_report
from fhir_server.fhir.errors import bad_request

FORMATS = ("pdf", "html", "document")
_MEDIA = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


def pcp_report(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    """200 with the report in the format asked for (pdf by default); `Location` names the DocumentReference."""
    answer = Inputs(req, frozenset({"format"})).text("format") or _accepted(req.headers.get("accept"))
    if answer not in FORMATS:
        raise bad_request(f"format is one of {', '.join(FORMATS)}, not {answer!r}", "format")
    written = write_report(ctx.repo, id, ctx.base_url, load_rules(ctx.program.candidate_rules))
    headers = {"Location": location(ctx, written.document_reference)}
    if answer == "document":
        return FhirResponse(200, written.bundle, headers=headers, interaction="operation", resource_type="Patient")
    content = written.pdf if answer == "pdf" else page(written.report).encode()
    return FhirResponse(200, content=content, headers={**headers, "Content-Type": _MEDIA[answer]},
                        interaction="operation", resource_type="Patient")


def _accepted(accept: str | None) -> str:
    """Without a `format` input, the format the Accept header asks for first; pdf by default."""
    for part in (accept or "").split(","):
        media = part.partition(";")[0].strip().lower()
        if media == "text/html":
            return "html"
        if media in ("application/fhir+json", "application/json"):
            return "document"
        if media == "application/pdf":
            return "pdf"
    return "pdf"
