# The two commands of the README: `make demo` and `make test`. Both set up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export CHURN_DATA_ROOT ?= $(CURDIR)/data

.PHONY: install demo test test-fast dev validate clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The Spark driver's class archive: ~6 s off every Spark process's start (resources/spark.py).
	$(VENV)/bin/churn spark-archive || echo "no Spark class archive: Spark starts without it"
	touch $(STAMP)

install: $(STAMP)

# The local Dagster instance of demo, dev and validate (runs, event log), telemetry off.
$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

# Simulate the default data set (if ./data has none), materialize the graph, print the summary.
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	CHURN_ENV=local $(VENV)/bin/churn demo --root $(CHURN_DATA_ROOT)

test: $(STAMP)
	CHURN_ENV=test $(PY) -m pytest

# Everything but the tests marked slow.
test-fast: $(STAMP)
	CHURN_ENV=test $(PY) -m pytest -m "not slow"

# The Dagster UI (webserver + daemon) on http://127.0.0.1:3000.
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	CHURN_ENV=local $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

validate: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	CHURN_ENV=local $(VENV)/bin/dagster definitions validate -w workspace.yaml

# The benchmark suite (BENCHMARKS.md): prints a table, writes bench/results.json. ARGS=--quick for
# a smoke run; ARGS="--repeats 5 --scales 1,4" etc.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .dagster_home data
