"""Evaluation: reward-model accuracy, PPO against its baseline under an independent judge,
side-by-side generations and perplexity (each module a command line: python -m rlhf_lite.eval.<name>)."""
