"""Which CodeSystem, ValueSet or ConceptMap a terminology operation works on (operations.html#executing):
the instance it is called on, a resource given in the call, or a canonical URL (`url|version`, or the
URL with a separate version input) looked up among the stored resources."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.operations.inputs import Inputs
from fhir_server.fhir.errors import bad_request, not_found
from fhir_server.fhir.terminology.codesystem import CodeSystemIndex
from fhir_server.store.terminology import StoredTerminology


def target(ctx: Context, terminology: StoredTerminology, inputs: Inputs, resource_type: str, id: str | None, *,
           url: str = "url", resource: str | None = None, version: str | None = None) -> dict:
    """The resource the call names, as JSON; 400 when it names none or two, 404 when it is not stored."""
    named = [n for n in (url, resource) if n is not None and n in inputs.names()]
    if id is not None:
        if named:
            raise bad_request(f"called on {resource_type}/{id}, the operation does not also take "
                              f"{' or '.join(named)}", *named)
        return ctx.repo.read(resource_type, id).resource()
    if len(named) > 1:
        raise bad_request(f"give either {url} or {resource}, not both", *named)
    given = inputs.resource(resource, resource_type) if resource is not None else None
    if given is not None:
        return given
    canonical = inputs.text(url)
    if canonical is None:
        ways = f"{url}" + (f" or {resource}" if resource else "")
        raise bad_request(f"name the {resource_type} by {ways}, or call the operation on its id", url)
    address, _, pinned = canonical.partition("|")
    wanted = (inputs.text(version) if version else None) or pinned or None
    found = terminology.resource(resource_type, address, wanted)
    if found is None:
        raise not_found(f"no {resource_type} with the url {address}"
                        + (f" and version {wanted}" if wanted else "") + " is stored on this server")
    return found


def code_system(ctx: Context, terminology: StoredTerminology, inputs: Inputs, id: str | None, system: str | None,
                version: str | None, input_name: str) -> CodeSystemIndex:
    """The CodeSystem of an instance call, or the stored one whose URL is `system` (`url|version` too);
    404 when it is not held with its codes, 400 when an instance call names codes of another system."""
    if system is not None and "|" in system:
        system, _, pinned = system.partition("|")
        version = version or pinned
    if id is not None:
        index = terminology.index_of(ctx.repo.read("CodeSystem", id))
        if index is not None and system is not None and system != index.url:
            raise bad_request(f"the codes are of {system}, not of CodeSystem/{id} ({index.url})", input_name)
    elif system is None:
        raise bad_request(f"name the code system by {input_name}, or call the operation on its id", input_name)
    else:
        index = terminology.code_system(system, version)
    if index is None or not index.holds_codes:
        what = f"CodeSystem/{id}" if id is not None else f"the CodeSystem {system}"
        raise not_found(f"{what} is not held on this server with its codes")
    return index
