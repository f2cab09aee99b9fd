"""`python -m bench.measures` keeps working: a tiny run loads three bundles, evaluates every Measure in
profiles/ over HTTP and writes its block between the markers, on SQLite and, when the tests have one, on
PostgreSQL. Nothing here asserts on a timing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import CORPORA

ROOT = Path(__file__).resolve().parents[2]
CORPUS = CORPORA / "synthea-r4.tar.gz"
BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("FHIR_TEST_POSTGRES_URL") else [])


@pytest.mark.skipif(not CORPUS.exists(), reason=f"shared corpus missing: {CORPUS} (../shared is absent)")
@pytest.mark.parametrize("backend", BACKENDS)
def test_small_measures_bench_writes_its_block(tmp_path, backend):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\n<!-- bench-measures:begin -->\nold\n<!-- bench-measures:end -->\n")
    database = ["--postgres-url", os.environ["FHIR_TEST_POSTGRES_URL"],
                "--database", f"careweave_bench_{uuid.uuid4().hex[:8]}"] if backend == "postgres" else []
    result = subprocess.run([sys.executable, "-m", "bench.measures", "--backend", backend, "--bundles", "3",
                             "--repeat", "1", "--corpus", str(CORPUS), "--out", str(report), *database],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = report.read_text()
    assert "old" not in text and text.count("<!-- bench-measures:begin -->") == 1
    rows = re.findall(r"^\| (c[\w-]+) \| [\d.]+ \| smoke run, no verdict \|", text, re.MULTILINE)
    assert rows == sorted(p.stem.removeprefix("Measure-") for p in (ROOT / "profiles").glob("Measure-*.json")), text
