"""capabilities: GET [base]/metadata (http.html#capabilities), generated from the registered routes."""

from __future__ import annotations

from collections.abc import Iterable

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations import operations_of
from fhir_server.fhir.definitions import resource_types
from fhir_server.fhir.errors import not_supported
from fhir_server.fhir.search_parameters import RESOURCE_COLUMNS, UNSUPPORTED, for_type
from fhir_server.search.index import composite_parts
from fhir_server.store.audit import SEARCH_PARAMETERS as AUDIT_SEARCH_PARAMETERS

SOFTWARE_VERSION = "0.1.0"


def capability_statement(base_url: str, type_interactions: Iterable[str], system_interactions: Iterable[str],
                         type_search_params: Iterable[tuple[str, str, str]],
                         oauth_uris: tuple[tuple[str, str], ...] | None = None) -> dict:
    """An instance CapabilityStatement (capabilitystatement.html) describing what this server does."""
    common = [{"name": n, "type": t, "documentation": d} for n, t, d in type_search_params]
    interactions = [{"code": code} for code in type_interactions]
    resources = [
        {
            "type": name,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{name}",
            "interaction": interactions,
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchInclude": ["*", *(f"{name}:{sp.code}" for sp in _searchable(name) if sp.type == "reference")],
            "searchRevInclude": ["*"],
            "searchParam": common + [{"name": sp.code, "definition": sp.url, "type": sp.type}
                                     for sp in _searchable(name)],
            **({"operation": [{"name": op.name, "definition": op.definition} for op in operations_of(name)]}
               if operations_of(name) else {}),
        }
        for name in sorted(resource_types()) if name != "AuditEvent"
    ]
    resources.append(_audit_log(common))
    resources.sort(key=lambda r: r["type"])
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-27",
        "publisher": "CareWeave",
        "kind": "instance",
        "software": {"name": "CareWeave", "version": SOFTWARE_VERSION},
        "implementation": {"description": "CareWeave FHIR R4 server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            **({"security": _security(oauth_uris)} if oauth_uris else {}),
            "resource": resources,
            "interaction": [{"code": code} for code in system_interactions],
        }],
    }


def _audit_log(common: list[dict]) -> dict:
    """AuditEvent, kept in the append-only audit log (store/audit.py): recorded, read and searched by the
    parameters the log answers, never changed."""
    return {
        "type": "AuditEvent",
        "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
        "interaction": [{"code": code} for code in ("read", "vread", "create", "search-type")],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [p for p in common if p["name"] == "_id"] + [
            {"name": sp.code, "definition": sp.url, "type": sp.type}
            for sp in _searchable("AuditEvent") if sp.code in AUDIT_SEARCH_PARAMETERS],
    }


def _security(oauth_uris: tuple[tuple[str, str], ...]) -> dict:
    """SMART on FHIR as the REST security service, with the endpoints in the `oauth-uris` extension: SMART
    2 deprecates it in favour of .well-known/smart-configuration, but clients such as Python's fhirclient
    find the endpoints only there (conformance.html)."""
    return {
        "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                       "extension": [{"url": name, "valueUri": uri} for name, uri in oauth_uris]}],
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}]}],
        "description": "OAuth 2.0 bearer tokens from CareWeave's SMART App Launch authorization server; "
                       "see .well-known/smart-configuration",
    }


def _searchable(resource_type: str) -> list:
    """The SearchParameters this server answers for a type (search.html; docs/search.md)."""
    return [sp for code, sp in sorted(for_type(resource_type).items())
            if code not in RESOURCE_COLUMNS and code not in UNSUPPORTED and sp.expression
            and (sp.type != "composite" or composite_parts(sp) is not None)]


def capabilities(req: FhirRequest, ctx: Context, statement: dict) -> FhirResponse:
    mode = req.param("mode")
    if mode not in (None, "full"):
        raise not_supported(f"metadata mode={mode} is not supported; only the full statement is served")
    return FhirResponse(200, statement, interaction="capabilities", resource_type="CapabilityStatement")
