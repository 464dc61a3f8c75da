"""Side-by-side generations of a baseline and a fine-tuned model on fixed prompts.

See rlhf_lite/eval/prompt_eval.py (also `python -m rlhf_lite.eval.prompt_eval`) for the options and the result.
"""

from rlhf_lite.errors import cli
from rlhf_lite.eval.prompt_eval import main

if __name__ == "__main__":
    cli(main)
