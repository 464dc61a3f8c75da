"""TRL 1.12's side of benchmarks/bench_ppo.py: `trl.experimental.ppo.PPOTrainer`, one PPO
iteration at a time, on the parent's command.

Runs in the throw-away TRL 1.12 virtualenv that bench_ppo.py creates (never in the project's
.venv: TRL 1.13 deleted this trainer), so it imports nothing from rlhf_lite.

    <trl venv>/bin/python benchmarks/_trl_ppo_worker.py SPEC.json

SPEC.json (written by bench_ppo.py): the model folders, the prompts' token ids and the settings.
Protocol, one JSON object per line on the original stdout (everything else the libraries print
goes to stderr): {"event": "ready", ...} once the trainer is built; then, for every "run" line
read on stdin, one {"event": "iteration", ...} with its wall time and its split; "quit" ends it.

TRL's `train()` owns the loop, so the worker does not edit or copy it; it only observes it:
- the iterations are `train()`'s own updates (total_episodes = batch x iterations); a callback
  blocks in `on_train_begin` / `on_step_end` until the parent says "run", so each iteration's
  clock starts when the command arrives and stops at that update's `on_step_end`, which TRL
  calls after the PPO step, its metrics and the scheduler step;
- the split: `batch_generation` (the sampling) and the first `forward` of the prepared
  policy+value wrapper (the first PPO mini-batch) are wrapped in the module's namespace, so
  generation = command -> end of sampling, scoring = end of sampling -> first training forward
  (reference, value and reward passes, rewards, GAE, whitening), training = the rest.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from _worker_protocol import Quit, wait_for_run  # importing it moves stdout to stderr


def main(spec_path: str) -> int:
    start = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    import peft
    from _trl_pacer import Pacer
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as ppo_module

    cuda = spec["device"] == "cuda"
    B, iterations = len(spec["prompts"]), spec["iterations"]
    tokenizer = AutoTokenizer.from_pretrained(spec["actor"])
    tokenizer.padding_side = "left"  # DataCollatorWithPadding pads the prompts on this side
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id

    def load(auto, path):
        kwargs = {"num_labels": 1} if auto is AutoModelForSequenceClassification else {}
        return auto.from_pretrained(path, dtype=torch.float32, **kwargs)

    policy = load(AutoModelForCausalLM, spec["actor"])
    # With LoRA the reference is the policy with its adapter switched off (ref_model=None), as in
    # our engine; without it, a second copy read from the same folder (not a deepcopy: same bytes).
    ref = None if spec["lora"] else load(AutoModelForCausalLM, spec["actor"])
    value = load(AutoModelForSequenceClassification, spec["critic"])
    reward = load(AutoModelForSequenceClassification, spec["critic"])
    peft_config = None
    if spec["lora"]:
        lora = spec["lora"]
        # LoRA on the policy only: TRL's PPOTrainer trains the value model in full whatever
        # peft_config says, and bench_ppo.py sets our critic the same way.
        peft_config = peft.LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"],
            task_type="CAUSAL_LM",
        )

    config = PPOConfig(
        output_dir=spec["output_dir"],
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1,
        seed=spec["seed"],
        use_cpu=not cuda,
        bf16=False,
        fp16=False,  # fp32 like our side (TRL's PPOConfig defaults to bf16)
        gradient_checkpointing=False,  # TRL's default is on; ours is off
        learning_rate=spec["learning_rate"],
        lr_scheduler_type="constant",
        weight_decay=0.0,
        per_device_train_batch_size=B,
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=spec["ppo_epochs"],
        local_rollout_forward_batch_size=B,
        total_episodes=B * iterations,  # one update per iteration, `iterations` updates in all
        response_length=spec["response_length"],
        # No stop token: every answer is response_length tokens, as our side's min_new_tokens
        # forces; both then score and train on exactly the same shapes.
        stop_token=None,
        temperature=spec["temperature"],
        kl_coef=spec["kl_coef"],
        num_sample_generations=0,
        dataloader_num_workers=0,
    )

    marks: dict = {}  # perf_counter() of the current iteration's phase boundaries

    def timed_generation(*args, **kwargs):
        marks["generation_start"] = time.perf_counter()
        out = original_generation(*args, **kwargs)
        marks["generation_end"] = time.perf_counter()
        marks["sequence_shape"] = list(out[0].shape)  # (batch, prompt + answer tokens)
        return out

    def timed_forward(model, *args, **kwargs):
        if model is trainer.model and "training_start" not in marks:
            marks["training_start"] = time.perf_counter()
        return original_forward(model, *args, **kwargs)

    original_generation, original_forward = ppo_module.batch_generation, ppo_module.forward
    ppo_module.batch_generation, ppo_module.forward = timed_generation, timed_forward

    def report(state) -> dict:
        return {"score_mean": state.log_history[-1].get("objective/scores") if state.log_history else None}

    dataset = Dataset.from_dict({"input_ids": spec["prompts"]})
    trainer = PPOTrainer(
        args=config,
        processing_class=tokenizer,
        model=policy,
        ref_model=ref,
        reward_model=reward,
        train_dataset=dataset,
        value_model=value,
        eval_dataset=dataset,
        callbacks=[Pacer(start, marks, report)],
        peft_config=peft_config,
    )
    try:
        trainer.train()
        wait_for_run()  # the parent says "quit" after the last iteration
    except Quit:
        pass
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
