"""Peak-memory planner: will a preset's three steps fit, and what to change if not.

    python -m rlhf_lite.plan --preset opt-1.3b-4090                  # one 24 GB GPU (from the preset)
    python -m rlhf_lite.plan --preset opt-13b-node --num-gpus 8 --zero-stage 3
    python -m rlhf_lite.plan --preset demo --device cpu              # host memory of a run on this CPU
    python -m rlhf_lite.plan --preset opt-1.3b-4090 --json --set ppo.max_answer_seq_len=128

For each step (sft, rm, ppo) the planner prints the estimated peak memory of one process split
into weights, gradients, optimizer states, activations, generation KV cache, logits and runtime,
a verdict against the memory budget and, when it does not fit, the changes (YAML keys or
accelerate configs) that bring it down, largest saving first.

"GB" means GiB (2**30 bytes) throughout, like nvidia-smi's MiB: a "24 GB" RTX 4090 has
24564 MiB = 23.99 GB.

How the estimate is made (the code below carries the details next to each formula):

* Parameters are counted exactly: each model is built on the `meta` device from its real config
  (no weights are read) and passed through the project's own `prepare_for_training`, so LoRA
  targets and ranks, `trainable_layers` and PEFT's fp32 adapters are what a run gets. 8-bit
  weights take 1 byte + an fp32 scale per output row, 4-bit NF4 with double quantisation 0.516
  byte; `prepare_model_for_kbit_training` turns the other 16-bit weights into fp32.
* Gradients: one per trainable parameter, in its dtype. Optimizer: torch's AdamW keeps two
  states in the dtype of each parameter (bf16 states for bf16 weights, fp32 for PEFT's fp32
  adapters; no fp32 master copy without DeepSpeed), plus at the step one temporary per parameter
  group on a GPU (its foreach path; none for the HF Trainer's fused AdamW). DeepSpeed ZeRO keeps
  an fp32 master copy and two fp32 states (12 bytes per trained parameter) divided over the
  GPUs, or on the host with offload. ZeRO-2 also divides the gradients, ZeRO-3 the weights of
  every model (and gathers the whole actor for generation).
* Activations: bytes per token per transformer block, counted tensor by tensor from what
  autograd saves in the transformers 5 implementations (OPT, BLOOM, Llama; others as Llama),
  in the spirit of Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
  Transformer Models" (sbh(34 + 5as/h) bytes for GPT blocks with 16-bit activations), but for
  SDPA attention (q, k, v, output, an fp32 logsumexp and a per-block copy of the mask are kept,
  no a x s x s scores except in BLOOM's eager attention), grouped-query k/v repeated to every
  head, dropout masks, and LoRA's extra copies. With gradient checkpointing a block keeps only its input (h values per
  token) and one block at a time is recomputed. `tests/test_plan.py` checks the per-block
  formula against autograd's saved tensors on small OPT (pre/post-LN, with/without dropout),
  Llama (GQA) and BLOOM models, fp32 and bf16, full and LoRA: it matches to the byte.
* PPO logits: `token_logprobs` upcasts the answer slice of the (B, T, V) logits to fp32 and
  takes gather - logsumexp. Measured on this CPU (see `logits_peaks`): the no-grad forward peaks
  at X + U (+ U for the upcast copy when the logits are 16-bit) and the training
  forward + backward at max(that, S + 3U), with X = B*T*V*d bytes of logits, U = B*A*V*4 and S
  the saved input of logsumexp (X for fp32 logits, whose slice keeps the whole tensor alive, U
  otherwise). SFT uses TRL's chunked LM head (tiles of 4096 tokens x 32768 vocabulary).
* PPO phases: generation (KV cache 2*L*B*T*kv_dim*d), scoring (four no-grad forwards), training
  (actor and critic activations, gradients, logits) and the optimizer step; the peak is the
  largest, with the optimizer states counted from the start (the steady state of a run: the
  first update allocates them only at its end). EMA (enable_ema) is a copy of the actor's
  trained weights; the reference is a second frozen actor unless the actor has LoRA.
* Runtime: on a GPU the CUDA context (CUDA_CONTEXT_BYTES, not seen by
  torch.cuda.max_memory_allocated) plus a 10% allocator margin; on the CPU the resident size of
  Python with torch, transformers, PEFT, TRL, accelerate and a tokenizer loaded
  (CPU_RUNTIME_BYTES). Loading is never the peak: transformers 5 maps safetensors files and the
  weights enter the resident set once, as they are first used (measured: RSS after loading the
  four demo models is the runtime alone).

`benchmarks/bench_memory.py` checks the `--device cpu` estimate of a PPO step against the
measured peak RSS of a real one (demo model, and random OPT-1.3B + OPT-350M in bf16).
"""

from .activations import (
    LogitsPeaks,
    block_backward_bytes,
    block_saved_bytes,
    inference_bytes,
    logits_peaks,
    model_extra_saved_bytes,
    sft_logits_bytes,
    training_activation_bytes,
)
from .architectures import (
    CPU_RUNTIME_BYTES,
    CUDA_ALLOCATOR_MARGIN,
    CUDA_CONTEXT_BYTES,
    DTYPE_BYTES,
    GB,
    KNOWN_ARCHITECTURES,
    STEPS,
    TRL_TOKEN_CHUNK,
    TRL_VOCAB_CHUNK,
    Shape,
    architecture,
    shape_of,
)
from .cli import LABELS, main, parser, render
from .counting import ModelCount, ModelSpec, count_model
from .settings import Preset, load_preset, plan_preset, preset_hardware
from .steps import (
    COMPONENTS,
    PLANNERS,
    Hardware,
    PPOSettings,
    RMSettings,
    SFTSettings,
    StepPlan,
    Trained,
    plan_ppo,
    plan_rm,
    plan_sft,
    trained_memory,
)
from .suggestions import suggest

__all__ = [
    "COMPONENTS",
    "CPU_RUNTIME_BYTES",
    "CUDA_ALLOCATOR_MARGIN",
    "CUDA_CONTEXT_BYTES",
    "DTYPE_BYTES",
    "GB",
    "Hardware",
    "KNOWN_ARCHITECTURES",
    "LABELS",
    "LogitsPeaks",
    "ModelCount",
    "ModelSpec",
    "PLANNERS",
    "PPOSettings",
    "Preset",
    "RMSettings",
    "SFTSettings",
    "STEPS",
    "Shape",
    "StepPlan",
    "TRL_TOKEN_CHUNK",
    "TRL_VOCAB_CHUNK",
    "Trained",
    "architecture",
    "block_backward_bytes",
    "block_saved_bytes",
    "count_model",
    "inference_bytes",
    "load_preset",
    "logits_peaks",
    "main",
    "model_extra_saved_bytes",
    "parser",
    "plan_ppo",
    "plan_preset",
    "plan_rm",
    "plan_sft",
    "preset_hardware",
    "render",
    "sft_logits_bytes",
    "shape_of",
    "suggest",
    "trained_memory",
    "training_activation_bytes",
]
