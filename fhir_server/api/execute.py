"""Run one FhirRequest in one database transaction: committed if it succeeds, rolled back if not."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from fhir_server.api.context import Context
from fhir_server.api.dispatch import dispatch
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.observability import request_id
from fhir_server.care.program import ProgramSettings
from fhir_server.care.rules import WRITE_RULES
from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.store.access import ALL, Access
from fhir_server.store.repository import open_repository

log = logging.getLogger("fhir_server.execute")
READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Server:
    """What a request needs from the running server."""

    engine: Engine
    base_url: str
    default_count: int = 50
    max_count: int = 1000
    # (name, URL) of the OAuth endpoints when tokens are required, for the CapabilityStatement's security.
    oauth_uris: tuple[tuple[str, str], ...] | None = None
    validation: str = "claimed"  # FHIR_VALIDATION for writes: off | claimed | all
    program: ProgramSettings = ProgramSettings()


class _Rollback(Exception):
    """Carries a failed response out of the unit of work so that nothing it did is committed."""

    def __init__(self, response: FhirResponse) -> None:
        self.response = response


def execute(server: Server, req: FhirRequest, access: Access = ALL) -> FhirResponse:
    """`access` is the grant the request's token carries; the repository applies it to every statement."""
    try:
        with open_repository(server.engine, write=req.method not in READS, base_url=server.base_url,
                             access=access, validation=server.validation, rules=WRITE_RULES) as repo:
            response = dispatch(req, Context(repo, server.base_url, server.default_count, server.max_count,
                                             server.oauth_uris, server.program))
            if response.status >= 400:
                raise _Rollback(response)
        return response
    except _Rollback as rollback:
        return rollback.response
    except FhirError as exc:  # raised at commit, e.g. a concurrent insert of the same id
        return FhirResponse(exc.status, exc.outcome(), headers=dict(exc.headers))
    except RecursionError:  # content nested deeper than the walks over it can follow; nothing was committed
        return FhirResponse.outcome(400, [Issue("too-costly", "the content is nested too deeply to process")])
    except OperationalError:
        log.exception("database unavailable")
        return FhirResponse.outcome(503, [Issue("transient", "the database is unavailable; retry later")])
    except Exception:
        log.exception("unhandled error")
        return FhirResponse.outcome(500, [Issue(
            "exception", f"internal error; quote request id {request_id.get()} to the operators")])
