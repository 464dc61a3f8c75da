"""rlhf-lite: DeepSpeed-Chat's three-step RLHF pipeline (SFT -> reward model -> PPO) on TRL, PEFT and accelerate."""

import logging

__version__ = "0.1.0"

# On CPUs with AVX512-BF16, importing bitsandbytes tries to fetch an optional CPU kernel from the hub
# and warns on every launch when it cannot (offline, or without the `kernels` package), although its
# own CPU kernels then do the work. Set before anything imports bitsandbytes.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
