"""Peak-memory planner: will a preset's three steps fit, and what to change if not.

    python -m rlhf_lite.plan --preset opt-1.3b-4090                  # one 24 GB GPU (from the preset)
    python -m rlhf_lite.plan --preset opt-13b-node --num-gpus 8 --zero-stage 3
    python -m rlhf_lite.plan --preset demo --device cpu              # host memory of a run on this CPU
    python -m rlhf_lite.plan --preset opt-1.3b-4090 --json --set ppo.max_answer_seq_len=128

Per step and phase: the peak memory of one process by component ("GB" means GiB), a verdict and,
when it does not fit, the changes that help, largest saving first. Parameters are counted exactly
(each model built on `meta` from its real config and passed through `prepare_for_training`),
activations per block from what autograd saves (`tests/test_plan.py` checks them to the byte).
Optimizer states count in every phase: a run's steady state (the first update allocates them only at
its end). Loading is never the peak: transformers maps safetensors files, and the weights enter the
resident set as they are first used. `benchmarks/bench_memory.py` checks the estimate against a run.
"""

from .activations import block_saved_bytes
from .architectures import (
    CPU_RUNTIME_BYTES,
    CUDA_CONTEXT_BYTES,
    DTYPE_BYTES,
    GB,
    KNOWN_ARCHITECTURES,
    STEPS,
    architecture,
)
from .cli import main, parser
from .counting import ModelSpec, count_model
from .settings import load_preset, plan_preset
from .steps import COMPONENTS, PLANNERS, Hardware, plan_ppo, plan_rm
from .suggestions import suggest
