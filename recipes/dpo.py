"""DPO from step 1's model on step 2's preference pairs, with TRL's DPOTrainer.

python recipes/dpo.py --config recipes/configs/demo/dpo.yaml [--field value ...]
accelerate launch --config_file accelerate_configs/zero2.yaml recipes/dpo.py --config ...
"""

from rlhf_lite.dpo import main
from rlhf_lite.errors import cli

if __name__ == "__main__":
    cli(main)
