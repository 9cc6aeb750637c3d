# The two commands of the README are `make run` and `make test`; both build the virtualenv
# they need. `make check` is the static half of `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PARTS := protocol agent server simulators
STAMP := $(VENV)/.farebox-installed
SOURCES := protocol/src agent/src server/src simulators/src tests bench

.PHONY: run test check format bench clean

$(STAMP): $(foreach p,$(PARTS),$(p)/pyproject.toml) packaging/requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r packaging/requirements-dev.txt $(foreach p,$(PARTS),-e ./$(p))
	touch $@

run: $(STAMP)
	$(BIN)/farebox-sim demo

check: $(STAMP)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/mypy $(SOURCES)
	$(BIN)/lint-imports

test: check
	packaging/scripts/ensure-postgres
	$(BIN)/pytest -c tests/pytest.ini tests

format: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

BENCHES := protocol tariffs tickets agent ledger ingest

bench: $(STAMP)
	@for b in $(BENCHES); do $(BIN)/python -m bench.$$b || exit 1; echo; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
