"""Peak-memory planner: will a preset's three steps fit, and what to change if not.

    python -m rlhf_lite.plan --preset opt-1.3b-4090                  # one 24 GB GPU (from the preset)
    python -m rlhf_lite.plan --preset opt-13b-node --num-gpus 8 --zero-stage 3
    python -m rlhf_lite.plan --preset demo --device cpu              # host memory of a run on this CPU
    python -m rlhf_lite.plan --preset opt-1.3b-4090 --json --set ppo.max_answer_seq_len=128

Per step and phase: the peak memory of one process by component ("GB" means GiB), a verdict and,
when it does not fit, the changes that help, largest saving first. Parameters are counted exactly
(each model built on `meta` from its real config and passed through `prepare_for_training`);
activations are counted per block from what autograd saves (`tests/test_plan.py` checks them to the
byte); AdamW keeps two states per parameter in its dtype, DeepSpeed ZeRO 12 bytes, divided over the
GPUs or offloaded; the runtime is the CUDA context + a 10% allocator margin on a GPU and the
process's RSS on the CPU (`benchmarks/bench_memory.py` checks that estimate against a real run).
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
from .cli import main, parser, render
from .counting import ModelSpec, count_model, quiet
from .settings import Preset, load_preset, plan_preset
from .steps import (
    COMPONENTS,
    PLANNERS,
    Hardware,
    PPOSettings,
    RMSettings,
    SFTSettings,
    StepPlan,
    plan_ppo,
    plan_rm,
    plan_sft,
)
from .suggestions import suggest
