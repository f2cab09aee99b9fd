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
# HL7's terminology (CC0), loaded by `make run` once; from the npm registry, skipped where npm is missing.
THO := hl7.terminology.r4@7.0.1
THO_PACKAGE := var/hl7.terminology.r4-7.0.1.tgz
TERMINOLOGY_STAMP := var/.terminology-loaded
# HL7's R4 examples (CC0), which tests/fhir/test_r4_examples_validate.py validates; from the npm registry.
R4_EXAMPLES := hl7.fhir.r4.examples@4.0.1
R4_EXAMPLES_PACKAGE := var/hl7.fhir.r4.examples-4.0.1.tgz

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

# The R4 specification's CodeSystems and ValueSets and HL7's terminology package, once (a re-run of
# `fhir-server terminology load` writes only what changed).
$(TERMINOLOGY_STAMP): $(STAMP)
	$(BIN)/fhir-server migrate
	@mkdir -p var
	@if [ ! -f $(THO_PACKAGE) ] && command -v npm >/dev/null; then \
		npm pack $(THO) --silent --pack-destination var >/dev/null; fi
	@if [ -f $(THO_PACKAGE) ]; then $(BIN)/fhir-server terminology load --package $(THO_PACKAGE); \
	else echo "npm not found: loading the R4 specification's terminology only"; \
		$(BIN)/fhir-server terminology load; fi
	touch $@

run: $(STAMP) $(TERMINOLOGY_STAMP)
	$(BIN)/fhir-server migrate
	$(BIN)/fhir-server seed-demo --once
	$(BIN)/fhir-server demo-logins --folder var
	$(BIN)/fhir-server serve --host $(HOST) --port $(PORT)

$(R4_EXAMPLES_PACKAGE):
	@mkdir -p var
	npm pack $(R4_EXAMPLES) --silent --pack-destination var >/dev/null

test: $(STAMP) $(SMART_JS_STAMP) $(R4_EXAMPLES_PACKAGE)
	scripts/ensure-chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python -m bench.validation
	$(BIN)/python -m bench.candidates
	$(BIN)/python -m bench.medication_review
	$(BIN)/python -m bench.measures
	$(BIN)/python -m bench.run

lint: $(STAMP)
	$(BIN)/ruff check fhir_server tests bench scripts
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache
