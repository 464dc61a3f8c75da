"""GRPO over TRL's GRPOTrainer, rewarded by step 2's reward model (see online.py).

python -m rlhf_lite.grpo --config recipes/configs/demo/grpo.yaml [--field value ...]
"""

from functools import partial

from trl import GRPOConfig, GRPOTrainer

from . import online
from .errors import cli
from .training import AdapterOffReference, StopOnNonFiniteLoss


class SFTReferenceGRPOTrainer(AdapterOffReference, StopOnNonFiniteLoss, GRPOTrainer):
    """GRPOTrainer whose reference is the SFT model it starts from, and which stops on a NaN/inf loss."""


arguments = partial(online.arguments, GRPOConfig, "grpo")
main = partial(online.run, SFTReferenceGRPOTrainer, GRPOConfig, "grpo")

if __name__ == "__main__":
    cli(main)
