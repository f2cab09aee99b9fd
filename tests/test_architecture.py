"""The layer order of DESIGN.md, enforced by import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_fhir_resources_is_imported_in_one_module_only():
    importers = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "fhir_server").rglob("*.py"))
        if any(line.startswith(("import fhir.resources", "from fhir.resources"))
               for line in path.read_text().splitlines())
    ]
    assert importers == ["fhir_server/fhir/models.py"]


def test_ruff_is_clean():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "fhir_server", "tests", "bench", "scripts"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
