"""Benchmark harness for CareWeave: Synthea ingest and read-by-id load (`make bench`)."""
