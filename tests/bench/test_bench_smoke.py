"""`make bench` keeps working: a tiny run of the harness on SQLite writes a report with its figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPORA

ROOT = Path(__file__).resolve().parents[2]
CORPUS = CORPORA / "synthea-r4.tar.gz"


@pytest.mark.skipif(not CORPUS.exists(), reason=f"shared corpus missing: {CORPUS} (../shared is absent)")
def test_small_bench_run_writes_its_report(tmp_path):
    report = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--backends", "sqlite", "--bundles", "3", "--clients", "2",
         "--duration", "1", "--levels", "1", "--corpus", str(CORPUS), "--out", str(report),
         "--load-generator", "python"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = report.read_text()
    assert "<!-- bench:begin -->" in text and "<!-- bench:end -->" in text
    ingest = re.search(r"^\| transactions \| 3 of 3 \| ([\d,]+) \|.* (\d+) \|$", text, re.MULTILINE)
    assert ingest and int(ingest[1].replace(",", "")) > 0 and ingest[2] == "0"  # resources, failures
    assert re.search(r"^\| 1 \| [\d,]+ \| [\d.]+ ms \| [\d.]+ ms \| 0 \|$", text, re.MULTILINE)  # reads
