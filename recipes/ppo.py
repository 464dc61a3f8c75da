"""Step 3: PPO of the SFT model (actor) against the reward model (critic + reward), our engine.

python recipes/ppo.py --config recipes/configs/demo/ppo.yaml [--field value ...]
accelerate launch --config_file accelerate_configs/zero2.yaml recipes/ppo.py --config ...
"""

from rlhf_lite.errors import cli
from rlhf_lite.ppo.__main__ import main

if __name__ == "__main__":
    cli(main)
