"""Step 1: supervised fine-tuning of the actor on prompt + chosen answer, with TRL's SFTTrainer.

python recipes/sft.py --config recipes/configs/demo/sft.yaml [--field value ...]
accelerate launch --config_file accelerate_configs/zero2.yaml recipes/sft.py --config ...
"""

from rlhf_lite.errors import cli
from rlhf_lite.sft import main

if __name__ == "__main__":
    cli(main)
