"""Step 2: a reward model trained on preference pairs, with TRL's RewardTrainer.

python recipes/rm.py --config recipes/configs/demo/rm.yaml [--field value ...]
accelerate launch --config_file accelerate_configs/zero2.yaml recipes/rm.py --config ...
"""

from rlhf_lite.errors import cli
from rlhf_lite.rm import main

if __name__ == "__main__":
    cli(main)
