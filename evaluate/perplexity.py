"""Perplexity of a causal LM on the chosen answers of a dataset split (SFT's answer-only loss).

See rlhf_lite/eval/perplexity.py (also `python -m rlhf_lite.eval.perplexity`) for the options and the result.
"""

from rlhf_lite.errors import cli
from rlhf_lite.eval.perplexity import main

if __name__ == "__main__":
    cli(main)
