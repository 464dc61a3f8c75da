"""DPO over TRL's DPOTrainer: from step 1's model, on step 2's share of the preference pairs; the
reference is the SFT model (with LoRA: the model with its adapter switched off).

    python -m rlhf_lite.dpo --config recipes/configs/demo/dpo.yaml [--field value ...]
"""

from __future__ import annotations

from dataclasses import replace

from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from .args import ModelArguments, PairArguments, parse
from .data.chat_template import set_chat_template
from .encoding import drop_long_prompts
from .errors import cli
from .models import load_causal_lm, load_tokenizer
from .training import (
    AdapterOffReference,
    StopOnNonFiniteLoss,
    lora_optimizer,
    policy_settings,
    prepare_run,
    step_rows,
    train_and_export,
)


class SFTReferenceDPOTrainer(AdapterOffReference, StopOnNonFiniteLoss, DPOTrainer):
    """DPOTrainer whose reference is the SFT model it starts from, and which stops on a NaN/inf loss."""


def arguments(argv=None):
    return parse([PairArguments, ModelArguments, DPOConfig], "dpo", argv)


def main(argv=None):
    script, model_args, training = arguments(argv)
    train_rows, eval_rows = step_rows(script, script.data_share, need_pairs=True, model=model_args.model_name_or_path)
    resume = prepare_run(training, script, model_args)

    tokenizer = load_tokenizer(model_args.model_name_or_path, trust_remote_code=training.trust_remote_code)
    set_chat_template(tokenizer, keep_own=script.chat_template)
    to_dataset = lambda rows, label: Dataset.from_list(
        [
            {k: r[k] for k in ("prompt", "chosen", "rejected")}
            for r in drop_long_prompts(tokenizer, rows, training.max_length, label)
        ]
    )
    settings = policy_settings(model_args, training)
    model = load_causal_lm(settings, tokenizer)
    # Training every weight, the reference is a frozen copy loaded as the model is (TRL's own would
    # lack the pad token the loader may add, and score over another vocabulary).
    frozen = replace(settings, trainable_layers=None, gradient_checkpointing=False)
    trainer = SFTReferenceDPOTrainer(
        model=model,
        ref_model=None if settings.lora else load_causal_lm(frozen, tokenizer),
        args=training,
        train_dataset=to_dataset(train_rows, "train"),
        eval_dataset=to_dataset(eval_rows, "eval") if training.eval_strategy != "no" else None,
        processing_class=tokenizer,
        optimizers=(lora_optimizer(model, training, model_args), None),
    )
    train_and_export(trainer, resume, tokenizer, model_args)


if __name__ == "__main__":
    cli(main)
