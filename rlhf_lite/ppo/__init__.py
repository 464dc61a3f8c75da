"""Step 3: our PPO engine with DeepSpeed-Chat's API (see trainer.py for the loop)."""

from .checkpoint import export_models
from .config import PPOArguments
from .data import PromptBatches, encode_prompts
from .engine import RLHFEngine
from .experience import Experience
from .trainer import NonFiniteError, PPOTrainer, answer_mask, total_updates
