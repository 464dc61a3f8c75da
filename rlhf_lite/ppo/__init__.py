"""Step 3: our PPO engine with DeepSpeed-Chat's API (see trainer.py for the loop)."""

from .checkpoint import export_models as export_models
from .config import PPOArguments as PPOArguments
from .data import PromptBatches as PromptBatches
from .data import encode_prompts as encode_prompts
from .engine import RLHFEngine as RLHFEngine
from .trainer import NonFiniteError as NonFiniteError
from .trainer import PPOTrainer as PPOTrainer
from .trainer import answer_mask as answer_mask
from .trainer import total_updates as total_updates
