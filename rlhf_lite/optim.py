"""Optimizer parameter groups, one rule for steps 1-2 (Trainer) and step 3 (our engine)."""

from torch import nn


def param_groups(module: nn.Module, lr: float, lora_lr: float | None, weight_decay: float) -> list[dict]:
    """AdamW parameter groups of `module`'s trained weights: LoRA weights at `lora_lr` (when given,
    as DeepSpeed-Chat's --lora_learning_rate), the rest at `lr`; no decay on biases and norms."""
    groups: dict = {}
    for name, p in module.named_parameters():
        if p.requires_grad:
            key = (lora_lr if lora_lr is not None and "lora_" in name else lr, 0.0 if p.ndim < 2 else weight_decay)
            groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
