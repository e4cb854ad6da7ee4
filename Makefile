# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv when it is missing and install the project into it (editable).

# pyproject.toml needs Python 3.11: take python3.11, else python3 if it is 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test lint system-deps clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || \
	  { echo "stafet needs Python 3.11 (pyproject.toml: >=3.11,<3.12); '$(PYTHON)' is not it." \
	         "Install python3.11 or run: make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stafet demo

# Debian packages the test suite talks to as real peers (sshd, openssl, gpgsm,
# PostgreSQL, Chromium + chromedriver). Installed only when missing and when we may (root + apt).
system-deps:
	@scripts/system-deps.sh

# axe-core for the console's accessibility tests: pinned, integrity-checked, from the npm registry.
AXE := $(VENV)/share/axe-core/axe.min.js
$(AXE): scripts/fetch-axe.sh | $(STAMP) system-deps
	scripts/fetch-axe.sh $(VENV)/share/axe-core
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check stafet connectors mappings transports keys flows tests bench
	$(BIN)/mypy stafet connectors mappings transports keys flows

# A real peer (sshd, SMTP, PostgreSQL, Prefect server) that cannot start fails the run:
# STAFET_TEST_ALLOW_SKIP (skip them, for a local run only) is removed here.
test: $(STAMP) system-deps $(AXE) lint
	env -u STAFET_TEST_ALLOW_SKIP $(BIN)/pytest -q

clean:
	rm -rf $(VENV) .stafet .stafet-demo .pytest_cache .mypy_cache .ruff_cache
