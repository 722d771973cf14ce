# guard: two commands on a fresh machine.
#   make run   - set up (virtualenv, dependencies, NLP model) and serve the API (embedded defaults)
#   make test  - set up, run the linters, then the whole test suite
# Every target is idempotent: re-running it does only what is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
# SoftHSM2 (Debian package) stands in for a hardware security module in the PKCS#11 tests.
SOFTHSM := /usr/lib/softhsm/libsofthsm2.so
# Debian's Chromium, which Playwright drives through its path in the console's browser tests
# (tests/console): no `playwright install`, no browser download.
CHROMIUM := /usr/bin/chromium
# wrk (Debian package): bench/api.py's load generator, a process of its own written in C.
WRK := /usr/bin/wrk
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup model run demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP) model

$(SOFTHSM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(WRK):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk

model: $(STAMP)
	$(BIN)/guard models install

run: setup
	$(BIN)/guard serve

demo: setup
	$(BIN)/guard redact --tenant acme --show-entities examples/conversation.txt

# demo-proxy: the demo CRM (examples/crm, 127.0.0.1:8481) in the background, guard in front of it.
.PHONY: demo-proxy
demo-proxy: setup
	export GUARD_UPSTREAM_CRM_TOKEN="$${GUARD_UPSTREAM_CRM_TOKEN:-demo-crm-token}"; \
	CRM_TOKEN="$$GUARD_UPSTREAM_CRM_TOKEN" $(BIN)/python -m examples.crm --port 8481 & crm=$$!; \
	trap 'kill $$crm 2>/dev/null' EXIT INT TERM; \
	$(BIN)/guard serve

test: setup $(SOFTHSM) $(CHROMIUM)
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check guard tests bench examples
	$(BIN)/ruff format --check guard tests bench examples
	$(BIN)/mypy

bench: setup $(WRK)
	$(BIN)/python bench/detect.py
	$(BIN)/python bench/batching.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/records.py
	$(BIN)/python bench/adversarial.py
	$(BIN)/python bench/incidents.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/subjects.py
	$(BIN)/python bench/retention.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
