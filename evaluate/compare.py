"""PPO, DPO, GRPO and RLOO from the same SFT and reward models, judged side by side (make compare).

See rlhf_lite/eval/compare.py (also `python -m rlhf_lite.eval.compare`) for the options and the result.
"""

from rlhf_lite.errors import cli
from rlhf_lite.eval.compare import main

if __name__ == "__main__":
    cli(main)
