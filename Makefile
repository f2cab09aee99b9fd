# CareWeave: `make run` serves the demo, `make test` runs every test, `make bench` measures.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
export FHIR_BASE_URL ?= http://$(HOST):$(PORT)/fhir

.PHONY: run test bench install lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/fhir-server migrate
	$(BIN)/fhir-server seed-demo --once
	$(BIN)/fhir-server serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python -m bench.run

lint: $(STAMP)
	$(BIN)/ruff check fhir_server tests bench scripts
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache
