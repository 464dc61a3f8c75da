"""RLOO from step 1's model, rewarded by step 2's reward model, with TRL's RLOOTrainer.

python recipes/rloo.py --config recipes/configs/demo/rloo.yaml [--field value ...]
accelerate launch --config_file accelerate_configs/zero2.yaml recipes/rloo.py --config ...
"""

from rlhf_lite.errors import cli
from rlhf_lite.rloo import main

if __name__ == "__main__":
    cli(main)
