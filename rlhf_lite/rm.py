"""Step 2: reward-model training on TRL's RewardTrainer, with DeepSpeed-Chat's loss as an option.

    python -m rlhf_lite.rm --config recipes/configs/demo/rm.yaml [--field value ...]

`last_token` (TRL's): -log sigmoid(r_chosen - r_rejected) on the last token; `divergence` (DeepSpeed-Chat's):
the same averaged from the first differing token to the end of the longer sequence.
"""

from __future__ import annotations

import contextlib
import sys

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import RewardConfig, RewardTrainer

from .args import REWARD_LOSSES, ModelArguments, RMArguments, parse
from .data.chat_template import set_chat_template
from .encoding import encode_pairs
from .errors import cli
from .models import has_dropout, load_reward_model, load_tokenizer, score_head
from .training import StopOnNonFiniteLoss, lora_optimizer, prepare_run, step_rows, train_and_export
from .trunk import Recorded, capture, frozen_depth, replay


def divergence_loss(values_c, values_r, ids_c, ids_r, mask_c, mask_r) -> torch.Tensor:
    """DeepSpeed-Chat's pairwise loss over the diverging span. All (B, T): per-token scores,
    right-padded token ids and attention masks of the chosen and rejected sequences."""
    pos = torch.arange(values_c.shape[1], device=values_c.device).expand_as(values_c)
    end = torch.maximum(mask_c.sum(1), mask_r.sum(1))
    differ = ((ids_c != ids_r) | (mask_c != mask_r)) & (pos < end[:, None])
    # identical pairs (no divergence) fall back to the last position, as in DeepSpeed-Chat
    first = torch.where(differ.any(1), differ.float().argmax(1), end - 1)
    span = (pos >= first[:, None]) & (pos < end[:, None])
    per_token = -F.logsigmoid(values_c - values_r)
    return ((per_token * span).sum(1) / span.sum(1)).mean()


def _pair_lengths(dataset) -> list[int]:
    # The Trainer reads lengths from "input_ids", which preference rows do not have; a pair is
    # padded to its longer side.
    return [max(len(c), len(r)) for c, r in zip(dataset["chosen_ids"], dataset["rejected_ids"])]


class PairwiseRewardTrainer(StopOnNonFiniteLoss, RewardTrainer):
    def __init__(self, *args, reward_loss: str = "last_token", frozen_block_cache_gb: float = 0.0, **kwargs):
        if reward_loss not in REWARD_LOSSES:
            raise ValueError(f"reward_loss must be one of {REWARD_LOSSES}, got '{reward_loss}'")
        self.reward_loss = reward_loss
        super().__init__(*args, **kwargs)
        self.trunk_depth = self._cached_depth(frozen_block_cache_gb)
        self.trunk: dict[bytes, torch.Tensor] = {}  # a sequence's token ids -> its frozen blocks' output
        self.trunk_as_tuple = False
        if getattr(self.model, "is_quantized", False) and not (self.args.bf16 or self.args.fp16):
            # TRL casts a quantised model's trainable weights to bf16 (QLoRA's recipe), which
            # assumes bf16 autocast; without it the bf16 score head would receive fp32 inputs.
            for p in self.model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()

    def _cached_depth(self, budget_gb: float) -> int:
        """Bottom blocks to record in epoch 1 and replay (trunk.py): 0 for one epoch, ZeRO-3, dropout or no room."""
        depth = frozen_depth(self.model)
        zero3 = self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3
        one_epoch = self.args.num_train_epochs <= 1 and self.args.max_steps <= 0
        if not depth or budget_gb <= 0 or zero3 or one_epoch or self.train_dataset is None or has_dropout(self.model):
            return 0
        tokens = 2 * sum(_pair_lengths(self.train_dataset))
        param = next(p for p in self.model.parameters() if p.is_floating_point())
        need_gb = tokens * self.model.config.hidden_size * param.element_size() / 2**30
        if need_gb > budget_gb:
            print(
                f"frozen_block_cache_gb {budget_gb:g} is below the {need_gb:.2f} GB that the frozen blocks' "
                "output of every training sequence needs: every epoch runs them again",
                file=sys.stderr,
            )
            return 0
        return depth

    @contextlib.contextmanager
    def _frozen_blocks(self, model, inputs):
        """Records the frozen blocks' output of each sequence or, when all have one, replays them."""
        if not (self.trunk_depth and model.training):
            yield
            return
        ids = inputs["input_ids"]
        # A row is kept up to its pair's longer side: the divergence loss reads the shorter one's
        # padding there, which (right padding, causal attention) depends on nothing further right.
        lengths = inputs["attention_mask"].sum(1)
        spans = torch.maximum(*lengths.chunk(2)).repeat(2).tolist()
        keys = [row[:n].cpu().numpy().tobytes() for row, n in zip(ids, spans)]
        record = Recorded(tuple(ids.shape))
        kept = [self.trunk.get(k) for k in keys]
        if all(h is not None for h in kept):
            record.hidden = kept[0].new_zeros(*ids.shape, kept[0].shape[-1])
            for i, h in enumerate(kept):
                record.hidden[i, : len(h)] = h
            record.as_tuple = self.trunk_as_tuple
            with replay(self.model, self.trunk_depth, record):
                yield
            return
        with capture(self.model, self.trunk_depth, record):
            yield
        self.trunk_as_tuple = record.as_tuple
        for i, (k, n) in enumerate(zip(keys, spans)):
            self.trunk[k] = record.hidden[i, :n].clone()

    def _get_train_sampler(self, train_dataset=None):
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        dataset = self.train_dataset if train_dataset is None else train_dataset
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(batch, lengths=_pair_lengths(dataset))

    def _get_eval_sampler(self, eval_dataset):
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_eval_sampler(eval_dataset)
        seeded = torch.Generator().manual_seed(self.args.seed)
        return LengthGroupedSampler(self.args.eval_batch_size, lengths=_pair_lengths(eval_dataset), generator=seeded)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with self._frozen_blocks(model, inputs):
            if self.reward_loss == "last_token":
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            captured = {}
            hook = score_head(model).register_forward_hook(lambda m, i, out: captured.update(v=out))
            try:  # the parent's forward pass also records accuracy, margin and reward statistics
                _, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            finally:
                hook.remove()
        values_c, values_r = captured["v"].squeeze(-1).float().chunk(2)
        ids_c, ids_r = inputs["input_ids"].chunk(2)
        mask_c, mask_r = inputs["attention_mask"].chunk(2)
        loss = divergence_loss(values_c, values_r, ids_c, ids_r, mask_c, mask_r)
        if self.args.center_rewards_coefficient is not None:
            loss = loss + self.args.center_rewards_coefficient * outputs.logits.float().pow(2).mean()
        return (loss, outputs) if return_outputs else loss


def main(argv=None):
    script, model_args, training = parse([RMArguments, ModelArguments, RewardConfig], "rm", argv)
    train_rows, eval_rows = step_rows(script, script.data_share, need_pairs=True, model=model_args.model_name_or_path)
    resume = prepare_run(training, script, model_args)

    tokenizer = load_tokenizer(model_args.model_name_or_path, trust_remote_code=training.trust_remote_code)
    set_chat_template(tokenizer, keep_own=script.chat_template)
    train = Dataset.from_list(encode_pairs(tokenizer, train_rows, training.max_length, "train"))
    evals = Dataset.from_list(encode_pairs(tokenizer, eval_rows, training.max_length, "eval"))

    model = load_reward_model(
        model_args.settings(training.activation_checkpointing, training.trust_remote_code), tokenizer, trained=False
    )
    trainer = PairwiseRewardTrainer(
        model=model,
        args=training,
        train_dataset=train,
        eval_dataset=evals if training.eval_strategy != "no" else None,
        processing_class=tokenizer,
        reward_loss=script.reward_loss,
        frozen_block_cache_gb=script.frozen_block_cache_gb,
        optimizers=(lora_optimizer(model, training, model_args), None),
    )
    train_and_export(trainer, resume, tokenizer, model_args)


if __name__ == "__main__":
    cli(main)
