"""docker-compose.yml is valid against the Compose Specification's schema and wires what CareWeave needs.

No Docker engine runs here, so the file is checked statically; the schema comes from
scripts/fetch_compose_schema.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_schema():
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.validate(COMPOSE, schema)


def test_services_have_health_checks_and_start_in_order():
    services = COMPOSE["services"]
    assert {"db", "migrate", "server"} <= set(services)
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["server"]["healthcheck"]["test"])
    assert services["server"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_server_is_configured_only_through_fhir_settings():
    env = COMPOSE["services"]["server"]["environment"]
    assert set(env) == {"FHIR_DATABASE_URL", "FHIR_BASE_URL", "FHIR_AUTH_MODE"}
    assert env["FHIR_DATABASE_URL"].startswith("postgresql://")
    assert re.search(r"--workers\s", " ".join(COMPOSE["services"]["server"]["command"]) + " ")


def test_dockerfile_runs_the_console_script_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER careweave" in dockerfile
    assert '"fhir-server", "serve"' in dockerfile
