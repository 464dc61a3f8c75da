"""A PPO actor against its SFT baseline, judged also by what PPO did not optimize.

See rlhf_lite/eval/ppo_eval.py (also `python -m rlhf_lite.eval.ppo_eval`) for the options and the result.
"""

from rlhf_lite.errors import cli
from rlhf_lite.eval.ppo_eval import main

if __name__ == "__main__":
    cli(main)
