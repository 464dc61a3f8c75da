"""RLOO over TRL's RLOOTrainer, rewarded by step 2's reward model (see online.py).

python -m rlhf_lite.rloo --config recipes/configs/demo/rloo.yaml [--field value ...]
"""

from functools import partial

from trl import RLOOConfig, RLOOTrainer

from . import online
from .errors import cli
from .training import AdapterOffReference, StopOnNonFiniteLoss


class SFTReferenceRLOOTrainer(AdapterOffReference, StopOnNonFiniteLoss, RLOOTrainer):
    """RLOOTrainer whose reference is the SFT model it starts from, and which stops on a NaN/inf loss."""


arguments = partial(online.arguments, RLOOConfig, "rloo")
main = partial(online.run, SFTReferenceRLOOTrainer, RLOOConfig, "rloo")

if __name__ == "__main__":
    cli(main)
