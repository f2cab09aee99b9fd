"""The whole-corpus operation benchmarks keep working (`bench.candidates`, `bench.medication_review`,
`bench.measures`): a tiny run of each loads a few bundles, calls its operation over HTTP and writes its block
between its markers, on SQLite and, when the tests have one, on PostgreSQL. Nothing here asserts on a
timing."""

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
MEASURES = sorted(p.stem.removeprefix("Measure-") for p in (ROOT / "profiles").glob("Measure-*.json"))


def _candidates(text: str) -> None:
    assert re.search(r"^\| \$care-candidates over every member of the corpus < 10 s on PostgreSQL \| [\d.]+ s .*"
                     r"2 members, [\d,]+ resources .*\| – \(part of the corpus", text, re.MULTILINE), text
    assert [m[1] for m in re.finditer(r"^\| (GET|POST) \| 1 \| [\d.]+ s \|", text, re.MULTILINE)] == ["GET", "POST"]


def _medication_review(text: str) -> None:
    assert re.search(r"^\| \$medication-review for every member with 2 or more active medicines never fails \| "
                     r"(\d+) of \1 reviewed, 0 failed .*\| yes \|$", text, re.MULTILINE), text


def _measures(text: str) -> None:
    rows = re.findall(r"^\| (c[\w-]+) \| [\d.]+ \| smoke run, no verdict \|", text, re.MULTILINE)
    assert rows == MEASURES, text


RUNS = {  # module: (marker, bundles and options, what its block must say)
    "bench.candidates": ("bench-candidates", ["--bundles", "2", "--repeat", "1"], _candidates),
    "bench.medication_review": ("bench-medication-review", ["--bundles", "3"], _medication_review),
    "bench.measures": ("bench-measures", ["--bundles", "3", "--repeat", "1"], _measures),
}


@pytest.mark.skipif(not CORPUS.exists(), reason=f"shared corpus missing: {CORPUS} (../shared is absent)")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module", sorted(RUNS))
def test_small_run_writes_its_block(tmp_path, module, backend):
    marker, options, check = RUNS[module]
    report = tmp_path / "benchmarks.md"
    report.write_text(f"# Benchmarks\n\n<!-- {marker}:begin -->\nold\n<!-- {marker}:end -->\n")
    database = ["--postgres-url", os.environ["FHIR_TEST_POSTGRES_URL"],
                "--database", f"careweave_bench_{uuid.uuid4().hex[:8]}"] if backend == "postgres" else []
    result = subprocess.run([sys.executable, "-m", module, "--backend", backend, *options, "--corpus", str(CORPUS),
                             "--out", str(report), *database], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = report.read_text()
    assert "old" not in text and text.count(f"<!-- {marker}:begin -->") == 1
    check(text)
