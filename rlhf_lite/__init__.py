"""rlhf-lite: DeepSpeed-Chat's three-step RLHF pipeline (SFT -> reward model -> PPO) on TRL, PEFT and accelerate."""

import logging

__version__ = "0.1.0"

# On CPUs with AVX512-BF16, importing bitsandbytes warns on every launch that it cannot fetch an
# optional CPU kernel from the hub, although its own kernels do the work. Set before it is imported.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
