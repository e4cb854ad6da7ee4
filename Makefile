# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv when it is missing and install the project into it (editable).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test lint system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stafet demo

# Debian packages the test suite talks to as real peers (sshd, openssl, gpgsm,
# PostgreSQL). Installed only when missing and when we may (root + apt).
system-deps:
	@scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check stafet connectors mappings transports keys flows tests bench
	$(BIN)/mypy stafet connectors mappings transports keys flows

test: $(STAMP) system-deps lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .stafet .pytest_cache .mypy_cache .ruff_cache
