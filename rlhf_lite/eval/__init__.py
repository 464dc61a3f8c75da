"""Evaluations, each a command line: python -m rlhf_lite.eval.<name>."""
