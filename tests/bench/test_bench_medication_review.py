"""`python -m bench.medication_review` keeps working: a tiny run loads three bundles, reviews the members on
two or more medicines over HTTP and writes its block between the markers, on SQLite and, when the tests have
one, on PostgreSQL. Nothing here asserts on a timing."""

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
def test_small_medication_review_bench_writes_its_block(tmp_path, backend):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\n<!-- bench-medication-review:begin -->\nold\n"
                      "<!-- bench-medication-review:end -->\n")
    database = ["--postgres-url", os.environ["FHIR_TEST_POSTGRES_URL"],
                "--database", f"careweave_bench_{uuid.uuid4().hex[:8]}"] if backend == "postgres" else []
    result = subprocess.run([sys.executable, "-m", "bench.medication_review", "--backend", backend, "--bundles", "3",
                             "--corpus", str(CORPUS), "--out", str(report), *database],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = report.read_text()
    assert "old" not in text and text.count("<!-- bench-medication-review:begin -->") == 1
    assert re.search(r"^\| \$medication-review for every member with 2 or more active medicines never fails \| "
                     r"(\d+) of \1 reviewed, 0 failed .*\| yes \|$", text, re.MULTILINE), text
