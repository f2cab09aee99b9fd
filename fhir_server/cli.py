"""The `fhir-server` command: serve, migrate, reindex, load, validate, terminology, ig, seed-demo. Settings
come from the environment only."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fhir_server.api.execute import Server, execute
from fhir_server.api.loading import (
    IG_TYPES,
    TERMINOLOGY_TYPES,
    Failure,
    LoadSummary,
    Unit,
    changed_units,
    load_unit,
    merged_resources,
    units,
)
from fhir_server.api.messages import FhirRequest
from fhir_server.api.observability import configure_logging
from fhir_server.auth.clients import RegistrationError, new_launch
from fhir_server.auth.clients import register as register_client
from fhir_server.auth.keys import ensure_key, new_key
from fhir_server.auth.users import UserError, add_user
from fhir_server.care.program import ProgramSettings
from fhir_server.config import AuthMode, Settings, SettingsError, load_settings
from fhir_server.fhir import jsonio
from fhir_server.fhir.definitions import BASE_TERMINOLOGY, resource_types
from fhir_server.store.audit import verify as verify_audit
from fhir_server.store.db import make_engine, unit_of_work
from fhir_server.store.migrate import is_current, upgrade
from fhir_server.store.reindex import reindex as reindex_types
from fhir_server.store.reindex import reindex_stale

app = typer.Typer(help="CareWeave FHIR R4 server.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


OPEN_MODE_WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  FHIR_AUTH_MODE=open: NO AUTHENTICATION. Anyone who can reach this port can read,
!!  change and delete every record. For a developer's own machine only: anywhere else,
!!  unset it (smart is the default).
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _server(settings: Settings, validation: str | None = None) -> Server:
    return Server(make_engine(settings.database_url, settings.db_pool_size), settings.base_url,
                  settings.default_page_size, settings.max_page_size,
                  validation=validation or settings.validation.value,
                  program=ProgramSettings(settings.outreach_attempts, settings.candidate_rules))


# Packages (the R4 specification's terminology, HL7's terminology, an IG) are loaded as published: each resource
# must be R4, but the profiles it claims are not enforced, since a publisher's own content may fall short of
# them (three of hl7.terminology.r4 7.0.1's CodeSystems claim shareablecodesystem and have no publisher).
PACKAGE_VALIDATION = "off"


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8080,
          workers: Annotated[int, typer.Option(min=1, max=64)] = 1) -> None:
    """Serve the FHIR API at http://HOST:PORT/fhir (uvicorn; in-flight requests finish on SIGTERM).

    With several workers, each process listens on a socket of its own (see fhir_server/workers.py).
    """
    import uvicorn

    from fhir_server.workers import run as serve_workers

    settings = _settings()  # fail fast, with a readable message, on a bad setting
    if settings.auth_mode == AuthMode.open:
        typer.echo(OPEN_MODE_WARNING, err=True)
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="careweave-metrics-")
    options = dict(app="fhir_server.app:served_app", factory=True, access_log=False, log_config=None,
                   timeout_graceful_shutdown=30, proxy_headers=True)
    if workers == 1:
        uvicorn.run(host=host, port=port, **options)
        return
    configure_logging(settings.log_level)  # the supervisor's own lines, as JSON like the workers'
    raise typer.Exit(serve_workers(host, port, workers, **options))


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema, then reindex the types whose SearchParameters changed."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    console.print("schema is current")
    if ensure_key(engine, datetime.now(UTC).replace(tzinfo=None)):
        console.print("made the authorization server's first signing key")
    types, count = reindex_stale(engine, settings.base_url)
    if count:
        console.print(f"reindexed {count} resources of {len(types)} changed types")


@app.command()
def reindex(resource_type: Annotated[list[str] | None, typer.Option("--type", help="a resource type; repeatable")]
            = None) -> None:
    """Rebuild the search index rows of every resource (or of the given types)."""
    settings = _settings()
    unknown = [t for t in resource_type or [] if t not in resource_types()]
    if unknown:
        console.print(f"[red]unknown resource type: {', '.join(unknown)}[/red]")
        raise typer.Exit(2)
    engine = make_engine(settings.database_url)
    if not is_current(engine):
        console.print("[red]the schema is not current: run `fhir-server migrate` first[/red]")
        raise typer.Exit(1)
    types = sorted(resource_type or resource_types())
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("reindexing", total=None)
        count = reindex_types(engine, types, settings.base_url,
                              lambda t, n: progress.update(task, advance=n, description=f"reindexing {t}"))
    console.print(f"reindexed {count} resources")


clients_app = typer.Typer(help="OAuth clients of the SMART authorization server.", no_args_is_help=True)
keys_app = typer.Typer(help="The authorization server's signing keys.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
terminology_app = typer.Typer(help="The CodeSystems, ValueSets and ConceptMaps the server holds.",
                              no_args_is_help=True)
app.add_typer(terminology_app, name="terminology")
ig_app = typer.Typer(help="Implementation guides: the profiles the validator checks resources against.",
                     no_args_is_help=True)
app.add_typer(ig_app, name="ig")


@clients_app.command("add")
def clients_add(
    client_type: Annotated[str, typer.Option("--type", help="public | confidential-symmetric | "
                                                           "confidential-asymmetric | backend")],
    scope: Annotated[str, typer.Option(help="the scopes the client may be granted, space-separated")],
    name: Annotated[str, typer.Option(help="a name people will recognise")] = "client",
    redirect_uri: Annotated[list[str] | None, typer.Option("--redirect-uri", help="exact; repeatable")] = None,
    jwks_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="public JWK Set")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="URL of the client's public JWK Set")] = None,
    launch_uri: Annotated[str | None, typer.Option(help="where an EHR launch opens the app")] = None,
) -> None:
    """Register a client and print its client_id (and, for a symmetric client, its secret, once)."""
    settings = _settings()
    try:
        jwks = json.loads(jwks_file.read_text()) if jwks_file else None
        registration = register_client(make_engine(settings.database_url), client_type=client_type, name=name,
                                       scope=scope, redirect_uris=redirect_uri, jwks=jwks, jwks_url=jwks_url,
                                       launch_uri=launch_uri)
    except (RegistrationError, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    print(registration.client_id)
    if registration.secret:  # shown this once; only its hash is kept
        print(registration.secret)


users_app = typer.Typer(help="People who sign in to the authorization server.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Option(help="what the user types to sign in")],
    role: Annotated[str, typer.Option(help="coordinator | physician | admin")],
    practitioner: Annotated[str | None, typer.Option(help="Practitioner/ID: who the user is (fhirUser)")] = None,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          help="asked for when not given; prefer the prompt")] = "",
) -> None:
    """Add a user; the password is asked for, and kept as an argon2id hash only."""
    settings = _settings()
    try:
        add_user(make_engine(settings.database_url), username=username, password=password, role=role,
                 practitioner=practitioner)
    except UserError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    console.print(f"added {role} {escape(username)}")


@app.command()
def launch(
    client: Annotated[str, typer.Option(help="the app's client_id")],
    patient: Annotated[str, typer.Option(help="Patient/ID in context")],
    user: Annotated[str, typer.Option(help="the username the EHR has signed in")],
    encounter: Annotated[str | None, typer.Option(help="Encounter/ID in context")] = None,
) -> None:
    """Simulate an EHR launch: print the URL that opens the app with a single-use launch context."""
    settings = _settings()
    try:
        url = new_launch(make_engine(settings.database_url), client_id=client, username=user, patient=patient,
                         encounter=encounter, iss=settings.base_url)
    except RegistrationError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    print(url)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key; the old one verifies what it signed for a day more, then is unpublished."""
    settings = _settings()
    kid = new_key(make_engine(settings.database_url), datetime.now(UTC).replace(tzinfo=None))
    console.print(f"signing with key {kid}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit log's hash chain: status 0 if it is whole, 1 with each break found."""
    settings = _settings()
    with unit_of_work(make_engine(settings.database_url), write=False) as conn:
        result = verify_audit(conn)
    for problem in result.problems[:50]:  # one line each, unwrapped, for whoever reads them by program
        typer.echo(f"broken: {problem}", err=True)
    if result.problems:
        typer.echo(f"{len(result.problems)} break(s) in {result.events} events", err=True)
        raise typer.Exit(1)
    typer.echo(f"{result.events} events, chain intact; head {result.head}")  # stdout: keep the head elsewhere


def _load(server: Server, items: Iterable[Unit | Failure], total: int | None, summary: LoadSummary | None = None,
          label: str = "loading") -> LoadSummary:
    summary = summary or LoadSummary()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total)
        for item in items:
            if isinstance(item, tuple):
                summary.add_failure(*item)
            else:
                load_unit(server, item, summary)
            progress.advance(task)
    return summary


def _report(summary: LoadSummary, *, unchanged: bool = False) -> None:
    table = Table(title="load summary")
    counts = {"created": summary.created, "updated": summary.updated,
              **({"unchanged": summary.unchanged} if unchanged else {}), "failed": summary.failed}
    for column in counts:
        table.add_column(column, justify="right")
    table.add_row(*(str(n) for n in counts.values()))
    console.print(table)
    for reason in summary.reasons:
        console.print(f"  [red]failed[/red] {escape(reason)}", soft_wrap=True, highlight=False)


@app.command()
def load(paths: Annotated[list[Path], typer.Argument(exists=True, help="files, folders or .tar.gz archives")]
         ) -> None:
    """Load transaction/batch Bundles, single resources and NDJSON files (exit 1 if anything failed)."""
    server = _server(_settings())
    summary = _load(server, units(paths), None)
    _report(summary)
    if summary.failed:
        raise typer.Exit(1)


@terminology_app.command("load")
def terminology_load(
    package: Annotated[list[Path] | None, typer.Option(exists=True, dir_okay=False,
                                                       help="an NPM FHIR package (.tgz) or an NDJSON file; repeatable")]
    = None,
    base: Annotated[bool, typer.Option(help="also the CodeSystems and ValueSets of the R4 specification")] = True,
) -> None:
    """Load CodeSystems, ValueSets and ConceptMaps: the R4 specification's own (a copy ships with the server)
    and those of each package, such as HL7's terminology (npm hl7.terminology.r4); where two have a resource of
    the same type and id, the later one's is loaded. A resource whose content is already stored is left
    alone, so loading twice writes nothing the second time. Exit 1 if anything failed."""
    server = _server(_settings(), PACKAGE_VALIDATION)
    summary = LoadSummary()
    sources = ([BASE_TERMINOLOGY] if base else []) + list(package or [])
    resources = merged_resources(sources, TERMINOLOGY_TYPES)
    _load(server, changed_units(server, "terminology", resources, summary), None, summary, label="terminology")
    _report(summary, unchanged=True)
    if summary.failed:
        raise typer.Exit(1)


@app.command("validate")
def validate_files(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False,
                                                help="JSON resources (a Bundle counts as one) or NDJSON files")],
    profile: Annotated[list[str] | None, typer.Option(help="also validate against this profile; repeatable")] = None,
) -> None:
    """Validate resources as `$validate` does, against their base definitions, the profiles they claim and
    each --profile, with the profiles of profiles/ and those stored in the database. Prints every issue;
    exit 1 if any is an error, 2 if a file cannot be read."""
    server = _server(_settings())
    params = [("profile", url) for url in profile or []]
    errors = unreadable = 0
    for path in paths:
        for where, resource in _resources_in(path):
            if isinstance(resource, str):
                console.print(f"[red]{escape(where)}: {escape(resource)}[/red]", soft_wrap=True, highlight=False)
                unreadable += 1
                continue
            response = execute(server, FhirRequest("POST", f"{resource.get('resourceType')}/$validate", params,
                                                   body=resource))
            for issue in response.body.get("issue", []) if isinstance(response.body, dict) else []:
                errors += issue["severity"] in ("error", "fatal")
                location = ", ".join(issue.get("expression", []))
                console.print(f"{escape(where)}: {issue['severity']} {issue['code']} {escape(location)}: "
                              f"{escape(issue.get('diagnostics', ''))}", soft_wrap=True, highlight=False)
    if unreadable:
        raise typer.Exit(2)
    if errors:
        raise typer.Exit(1)


def _resources_in(path: Path) -> Iterable[tuple[str, dict | str]]:
    """(where, resource) for each resource of a JSON or NDJSON file; (where, why) for what cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield str(path), f"cannot read: {exc}"
        return
    lines = enumerate(data.splitlines(), 1) if path.name.endswith(".ndjson") else [(0, data)]
    for number, text in lines:
        where = f"{path.name} line {number}" if number else path.name
        if not text.strip():
            continue
        try:
            resource = jsonio.loads(text)
        except jsonio.JSONDecodeError as exc:
            yield where, f"invalid JSON: {exc}"
            continue
        yield (where, resource) if isinstance(resource, dict) else (where, "not a JSON object")


@ig_app.command("load")
def ig_load(packages: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False,
                                                            help="NPM FHIR packages (.tgz), such as US Core's")]
            ) -> None:
    """Load an implementation guide's StructureDefinitions (profiles and extensions), ValueSets, CodeSystems
    and ConceptMaps, so that $validate and validation on write (FHIR_VALIDATION) check resources against
    them. Resources already stored with the same content are left alone. Exit 1 if anything failed."""
    server = _server(_settings(), PACKAGE_VALIDATION)
    summary = LoadSummary()
    resources = merged_resources(list(packages), IG_TYPES)
    _load(server, changed_units(server, "ig", resources, summary), None, summary, label="implementation guide")
    _report(summary, unchanged=True)
    if summary.failed:
        raise typer.Exit(1)


@app.command("demo-logins")
def demo_logins(folder: Annotated[Path, typer.Option(help="where the passwords and the key are kept")] = Path("var")
                ) -> None:
    """Demo sign-ins for smart mode: users coordinator, physician and admin, and a backend client (run after
    seed-demo). Passwords and the client's key go to files only their owner can read, never to the screen."""
    from fhir_server.care.demo_logins import ensure_demo_logins

    settings = _settings()
    result = ensure_demo_logins(make_engine(settings.database_url), folder)
    if result.added:
        console.print(f"added {', '.join(result.added)}")
    for username in result.missing_passwords:
        console.print(f"[yellow]{username} exists but {result.logins} lacks its password: "
                      f"set one with `fhir-server users add` on a new database[/yellow]")
    origin = settings.base_url.removesuffix("/fhir")
    console.print(
        f"Sign in as coordinator, physician or admin on the login page an app's launch opens "
        f"({origin}/auth/authorize); the passwords are in {result.logins}.\n"
        f"Register an app: fhir-server clients add --type public --scope 'user/*.rs' --redirect-uri URL\n"
        f"Backend service: the client id is in {result.logins}, its private key (RS384) in {result.key}; "
        f"POST a client_credentials request with a private_key_jwt assertion to {origin}/auth/token.")


@app.command("seed-demo")
def seed_demo(members: Annotated[int, typer.Option(min=1, max=100_000)] = 200,
              seed: int = 7,
              once: Annotated[bool, typer.Option(help="do nothing if the demo data set is already loaded")] = False
              ) -> None:
    """Load the deterministic demo program: practices, PCPs, coordinators and members."""
    from fhir_server.care.demo import demo_bundle

    server = _server(_settings())
    bundle = demo_bundle(members=members, seed=seed)
    if once and execute(server, FhirRequest("GET", bundle["entry"][0]["request"]["url"])).status == 200:
        console.print("demo data already loaded")
        return
    summary = _load(server, [Unit("demo", bundle)], 1)
    _report(summary)
    if summary.failed:
        raise typer.Exit(1)

