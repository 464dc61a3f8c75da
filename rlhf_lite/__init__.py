"""rlhf-lite: DeepSpeed-Chat's three-step RLHF pipeline (SFT -> reward model -> PPO) on TRL, PEFT and accelerate."""

__version__ = "0.1.0"
