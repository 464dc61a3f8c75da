"""Reward-model accuracy on held-out preference pairs, or the scores of ad-hoc good/bad answers.

See rlhf_lite/eval/rm_eval.py (also `python -m rlhf_lite.eval.rm_eval`) for the options and the result.
"""

from rlhf_lite.errors import cli
from rlhf_lite.eval.rm_eval import main

if __name__ == "__main__":
    cli(main)
