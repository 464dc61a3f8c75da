"""GRPO and RLOO over TRL's trainers: step 1's model samples groups of answers to step 3's prompts and
learns from step 2's reward model; no critic (each answer's baseline is its group's other answers)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from accelerate import PartialState
from datasets import Dataset

from .args import ModelArguments, ScriptArguments, parse, preset_name, step_output
from .data.chat_template import set_chat_template
from .encoding import keep_short_prompts
from .eval.scoring import score_ids
from .models import ModelSettings, check_models, load_causal_lm, load_reward_model
from .training import lora_optimizer, policy_settings, prepare_run, step_rows, train_and_export


@dataclass
class OnlineArguments(ScriptArguments):
    reward_model_name_or_path: str | None = field(default=None, metadata={"help": "default outputs/<preset>/rm"})
    max_prompt_length: int = field(default=256, metadata={"help": "longer prompts are dropped and counted"})


class RewardModelFunction:
    """Step 2's reward model as a TRL reward function, scoring each answer as reward training and PPO
    do: the prompt's tokens, then the answer's with the EOS the actor generated (none if it was cut off).
    TRL's own path for a reward model scores re-tokenized text without the EOS, which it was not trained on."""

    __name__ = "reward_model"  # TRL names each reward function's metrics by it

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model.to(PartialState().device).eval(), tokenizer

    def __call__(self, prompts: list[str], completion_ids: list[list[int]], **kwargs) -> list[float]:
        prompt_ids = self.tokenizer(list(prompts))["input_ids"]
        ids = [p + list(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
        return score_ids(self.model, ids, self.tokenizer.pad_token_id, batch_size=len(ids))


def arguments(config_class, step: str, argv=None):
    return parse([OnlineArguments, ModelArguments, config_class], step, argv)


def run(trainer_class, config_class, step: str, argv=None):
    script, model_args, training = arguments(config_class, step, argv)
    if script.reward_model_name_or_path is None:  # step 2's model, as for PPO
        preset = preset_name(sys.argv[1:] if argv is None else argv)
        script.reward_model_name_or_path = step_output(preset, "rm", step, "reward_model_name_or_path")
    rows, _ = step_rows(script, 2, need_answers=False, model=model_args.model_name_or_path)
    resume = prepare_run(training, script, model_args)

    names = {"actor": model_args.model_name_or_path}, {"reward model": script.reward_model_name_or_path}
    tokenizer = check_models(*names, trust_remote_code=training.trust_remote_code)["actor"]
    set_chat_template(tokenizer, keep_own=script.chat_template)
    lengths = [len(ids) for ids in tokenizer([r["prompt"] for r in rows])["input_ids"]]
    limit = script.max_prompt_length
    prompts = keep_short_prompts(rows, lengths, limit, step, f"max_prompt_length {limit}")
    settings = policy_settings(model_args, training)
    model = load_causal_lm(settings, tokenizer)
    reward_model = load_reward_model(
        ModelSettings(script.reward_model_name_or_path, model_args.dtype, trust_remote_code=settings.trust_remote_code)
    )
    trainer = trainer_class(
        model=model,
        reward_funcs=RewardModelFunction(reward_model, tokenizer),
        args=training,
        train_dataset=Dataset.from_list([{"prompt": r["prompt"]} for r in prompts]),
        processing_class=tokenizer,
        optimizers=(lora_optimizer(model, training, model_args), None),
    )
    train_and_export(trainer, resume, tokenizer, model_args)
