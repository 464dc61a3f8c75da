"""Step 2: a reward model trained on preference pairs, with TRL's RewardTrainer.

    python recipes/rm.py --config recipes/configs/demo/rm.yaml [--field value ...]
    accelerate launch --config_file accelerate_configs/zero2.yaml recipes/rm.py --config ...
"""

# rlhf_lite first: importing it quiets a library's import-time warning (rlhf_lite/__init__.py)
from rlhf_lite.args import ModelArguments, RMArguments, parse
from rlhf_lite.encoding import encode_pairs
from rlhf_lite.errors import cli
from rlhf_lite.models import load_reward_model, load_tokenizer
from rlhf_lite.reward import PairwiseRewardTrainer
from rlhf_lite.training import (MetricsFile, lora_optimizer, prepare_run, step_rows,
                                train_and_export)

from datasets import Dataset
from trl import RewardConfig


def main(argv=None):
    script, model_args, training = parse([RMArguments, ModelArguments, RewardConfig], "rm", argv)
    train_rows, eval_rows = step_rows(script, part=script.data_share, need_pairs=True)
    resume = prepare_run(training, script, model_args)

    tokenizer = load_tokenizer(model_args.model_name_or_path,
                               trust_remote_code=training.trust_remote_code)
    train = Dataset.from_list(encode_pairs(tokenizer, train_rows, training.max_length, "train"))
    evals = Dataset.from_list(encode_pairs(tokenizer, eval_rows, training.max_length, "eval"))

    model = load_reward_model(model_args.settings(training.activation_checkpointing,
                                                  training.trust_remote_code), tokenizer, trained=False)
    trainer = PairwiseRewardTrainer(
        model=model, args=training, train_dataset=train,
        eval_dataset=evals if training.eval_strategy != "no" else None,
        processing_class=tokenizer, callbacks=[MetricsFile()], reward_loss=script.reward_loss,
        frozen_block_cache_gb=script.frozen_block_cache_gb,
        optimizers=(lora_optimizer(model, training, model_args), None))
    train_and_export(trainer, resume, tokenizer, model_args)


if __name__ == "__main__":
    cli(main)
