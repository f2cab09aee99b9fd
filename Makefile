# CareWeave: `make run` serves the demo, `make test` runs every test, `make bench` measures.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SMART_JS := tests/smart_js
SMART_JS_STAMP := $(SMART_JS)/node_modules/.installed
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

# The browser app of tests/auth/test_fhirclient_js.py. Its optional dependencies are React Native's and Expo's,
# which a browser never loads.
$(SMART_JS_STAMP): $(SMART_JS)/package-lock.json
	npm ci --prefix $(SMART_JS) --omit=optional --ignore-scripts --no-audit --no-fund
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/fhir-server migrate
	$(BIN)/fhir-server seed-demo --once
	$(BIN)/fhir-server demo-logins --folder var
	$(BIN)/fhir-server serve --host $(HOST) --port $(PORT)

test: $(STAMP) $(SMART_JS_STAMP)
	scripts/ensure-chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python -m bench.run

lint: $(STAMP)
	$(BIN)/ruff check fhir_server tests bench scripts
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache
