"""Step 1: supervised fine-tuning of the actor on prompt + chosen answer, with TRL's SFTTrainer.

    python recipes/sft.py --config recipes/configs/demo/sft.yaml [--field value ...]
    accelerate launch --config_file accelerate_configs/zero2.yaml recipes/sft.py --config ...
"""

# rlhf_lite first: importing it quiets a library's import-time warning (rlhf_lite/__init__.py)
from rlhf_lite.args import ModelArguments, SFTArguments, parse
from rlhf_lite.encoding import drop_long_prompts
from rlhf_lite.errors import cli
from rlhf_lite.models import load_causal_lm, load_tokenizer
from rlhf_lite.sft_loss import AnswerOnlySFTTrainer
from rlhf_lite.training import (MetricsFile, lora_optimizer, prepare_run, step_rows,
                                train_and_export)

from datasets import Dataset
from trl import SFTConfig


def main(argv=None):
    script, model_args, training = parse([SFTArguments, ModelArguments, SFTConfig], "sft", argv)
    training.completion_only_loss = not script.loss_on_full_text
    train_rows, eval_rows = step_rows(script, part=0, need_pairs=False)
    resume = prepare_run(training, script, model_args)

    tokenizer = load_tokenizer(model_args.model_name_or_path,
                               trust_remote_code=training.trust_remote_code)
    to_examples = lambda rows, label: [  # noqa: E731
        {"prompt": r["prompt"], "completion": r["chosen"]}
        for r in drop_long_prompts(tokenizer, rows, training.max_length, label)]
    train = Dataset.from_list(to_examples(train_rows, "train"))
    evals = Dataset.from_list(to_examples(eval_rows, "eval"))

    model = load_causal_lm(model_args.settings(training.activation_checkpointing,
                                               training.trust_remote_code), tokenizer)
    trainer = AnswerOnlySFTTrainer(model=model, args=training, train_dataset=train,
                                   eval_dataset=evals if training.eval_strategy != "no" else None,
                                   processing_class=tokenizer, callbacks=[MetricsFile()],
                                   optimizers=(lora_optimizer(model, training, model_args), None))
    train_and_export(trainer, resume, tokenizer, model_args)


if __name__ == "__main__":
    cli(main)
