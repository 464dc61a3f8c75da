"""Step 1: supervised fine-tuning on prompt + chosen answer, over TRL's SFTTrainer.

    python -m rlhf_lite.sft --config recipes/configs/demo/sft.yaml [--field value ...]

On one CPU process the loss projects only the answer positions onto the vocabulary (TRL's fused LM
head, without Triton, scores every position: ~0.8x a hand-written loop, benchmarks/bench_train.py).
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from .args import ModelArguments, SFTArguments, parse
from .data.chat_template import set_chat_template
from .encoding import drop_long_prompts
from .errors import cli
from .models import load_causal_lm, load_tokenizer
from .training import StopOnNonFiniteLoss, lora_optimizer, prepare_run, step_rows, train_and_export


class AnswerOnlySFTTrainer(StopOnNonFiniteLoss, SFTTrainer):
    """SFTTrainer whose loss, where it can, projects only the answer positions (TRL's metrics kept)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answer_metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.answer_tokens = 0

    def log(self, logs: dict, start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        prefix = "eval_" if mode == "eval" else ""
        logs.update({prefix + k: sum(v) / len(v) for k, v in self.answer_metrics[mode].items()})
        self.answer_metrics[mode].clear()
        super().log(logs, start_time)

    def _plain_loss_applies(self, model, inputs: dict, return_outputs: bool) -> bool:
        config = self.accelerator.unwrap_model(model).config.get_text_config()
        return (
            inputs["input_ids"].device.type == "cpu"
            and not return_outputs
            and "labels" in inputs
            and "attention_mask" in inputs
            and self.accelerator.num_processes == 1
            and not self.is_deepspeed_enabled
            and self.compute_loss_func is None
            and self.label_smoother is None
            and self.args.loss_type == "nll"
            and not self.aux_loss_enabled
            and not getattr(config, "final_logit_softcapping", None)
            and not getattr(config, "logit_scale", None)
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._plain_loss_applies(model, inputs, return_outputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        unwrapped = self.accelerator.unwrap_model(model)
        causal_lm = unwrapped.get_base_model() if hasattr(unwrapped, "get_base_model") else unwrapped
        body_inputs = {k: v for k, v in inputs.items() if k != "labels"} | {"use_cache": False}
        hidden = causal_lm.base_model(**body_inputs).last_hidden_state[:, :-1]
        labels = inputs["labels"][:, 1:]  # position t predicts token t + 1
        scored = labels != -100
        targets = labels[scored]
        logits = causal_lm.get_output_embeddings()(hidden[scored]).float()
        count = scored.sum() if num_items_in_batch is None else num_items_in_batch
        loss = F.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(count).clamp(min=1)

        with torch.no_grad():
            valid = max(int(scored.sum()), 1)
            logp = logits.log_softmax(-1)
            metrics = self.answer_metrics[mode]
            metrics["entropy"].append(float(-(logp.exp() * logp).sum()) / valid)
            metrics["mean_token_accuracy"].append(float((logits.argmax(-1) == targets).sum()) / valid)
        if mode == "train":
            self.answer_tokens += int(inputs["attention_mask"].sum())
        metrics["num_tokens"] = [self.answer_tokens]
        return loss


def main(argv=None):
    script, model_args, training = parse([SFTArguments, ModelArguments, SFTConfig], "sft", argv)
    training.completion_only_loss = not script.loss_on_full_text
    train_rows, eval_rows = step_rows(script, 0, model=model_args.model_name_or_path)
    resume = prepare_run(training, script, model_args)

    tokenizer = load_tokenizer(model_args.model_name_or_path, trust_remote_code=training.trust_remote_code)
    set_chat_template(tokenizer, keep_own=script.chat_template)
    to_examples = lambda rows, label: [
        {"prompt": r["prompt"], "completion": r["chosen"]}
        for r in drop_long_prompts(tokenizer, rows, training.max_length, label)
    ]
    train = Dataset.from_list(to_examples(train_rows, "train"))
    evals = Dataset.from_list(to_examples(eval_rows, "eval"))

    model = load_causal_lm(
        model_args.settings(training.activation_checkpointing, training.trust_remote_code), tokenizer
    )
    trainer = AnswerOnlySFTTrainer(
        model=model,
        args=training,
        train_dataset=train,
        eval_dataset=evals if training.eval_strategy != "no" else None,
        processing_class=tokenizer,
        optimizers=(lora_optimizer(model, training, model_args), None),
    )
    train_and_export(trainer, resume, tokenizer, model_args)


if __name__ == "__main__":
    cli(main)
