"""GRPO from step 1's model, rewarded by step 2's reward model, with TRL's GRPOTrainer.

python recipes/grpo.py --config recipes/configs/demo/grpo.yaml [--field value ...]
accelerate launch --config_file accelerate_configs/zero2.yaml recipes/grpo.py --config ...
"""

from rlhf_lite.errors import cli
from rlhf_lite.grpo import main

if __name__ == "__main__":
    cli(main)
