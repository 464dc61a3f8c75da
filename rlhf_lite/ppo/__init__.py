"""Step 3: our PPO engine with DeepSpeed-Chat's API (see trainer.py for the loop)."""

from .checkpoint import export_models, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import PPOArguments
from .data import PromptBatches, encode_prompts, ptx_batches
from .engine import ActorCritic, RLHFEngine
from .experience import Experience
from .trainer import NonFiniteError, PPOTrainer, answer_mask, total_updates

__all__ = [
    "ActorCritic",
    "Experience",
    "NonFiniteError",
    "PPOArguments",
    "PPOTrainer",
    "PromptBatches",
    "RLHFEngine",
    "answer_mask",
    "encode_prompts",
    "export_models",
    "latest_checkpoint",
    "load_checkpoint",
    "ptx_batches",
    "save_checkpoint",
    "total_updates",
]
