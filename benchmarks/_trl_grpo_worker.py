"""TRL's side of benchmarks/bench_ppo.py's GRPO comparison: its maintained `trl.GRPOTrainer`, one
optimizer step at a time, on the parent's command.

Runs in the project's own .venv (the TRL there, not the throw-away TRL 1.12 virtualenv of the PPO
comparison) and takes its reward function from rlhf_lite.online, as the project's GRPO recipe does.

    .venv/bin/python benchmarks/_trl_grpo_worker.py SPEC.json

SPEC.json (written by bench_ppo.py): the model folders, the token ids of the B/G prompts, the group
size G and the settings. Protocol, that of _trl_ppo_worker.py: one JSON object per line on the
original stdout (everything else the libraries print goes to stderr): {"event": "ready", ...} once
the trainer is built; then, for every "run" line read on stdin, one {"event": "iteration", ...}
with its wall time and its split; "quit" ends it.

TRL's `train()` owns the loop, so the worker does not edit or copy it; it only observes it:
- the iterations are `train()`'s own optimizer steps (max_steps = iterations, a dataset of the B/G
  prompts repeated once per iteration, not shuffled, so every step samples G answers to each of
  the same prompts, as our side runs the same batch every time); each step generates its own
  B = B/G x G answers and trains on them once (steps_per_generation = num_iterations = 1); a
  callback blocks in `on_train_begin` / `on_step_end` until the parent says "run", so each
  iteration's clock starts when the command arrives and stops at that step's `on_step_end`, which
  Trainer calls after the backward pass, gradient clipping, the optimizer and scheduler steps;
- the split: the trainer's `_generate` (prompt tokenization and sampling) and
  `_generate_and_score_completions` (all of the rollout) are wrapped on the instance, so
  generation = command -> end of `_generate` (the dataloader batch included), scoring = from there
  to the end of the rollout (the reference forward, the reward model, the group advantages and
  the metrics), training = the rest (the policy forward with autograd, the loss, the backward
  pass and the optimizer step).
The prompts are the parent's token ids decoded to text (TRL's GRPOTrainer takes text prompts and
tokenizes them itself); the worker checks that TRL's tokenization gives back the same ids.
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
    from trl import GRPOConfig, GRPOTrainer

    from rlhf_lite.online import RewardModelFunction

    cuda = spec["device"] == "cuda"
    G, L, iterations = spec["num_generations"], spec["response_length"], spec["iterations"]
    prompts_ids = spec["prompts"]
    B = len(prompts_ids) * G  # answers per step = our side's batch
    tokenizer = AutoTokenizer.from_pretrained(spec["actor"])
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    prompts = [tokenizer.decode(ids, skip_special_tokens=False) for ids in prompts_ids]
    if tokenizer(prompts)["input_ids"] != prompts_ids:
        raise SystemExit("the prompts do not survive TRL's text round trip: the two sides would differ")

    policy = AutoModelForCausalLM.from_pretrained(spec["actor"], dtype=torch.float32)
    reward = AutoModelForSequenceClassification.from_pretrained(spec["critic"], num_labels=1, dtype=torch.float32)
    peft_config = None
    if spec["lora"]:
        lora = spec["lora"]
        # With LoRA the reference is the policy with its adapter switched off, as in our engine; without
        # it, TRL loads a second copy from the policy's folder (its config's name_or_path).
        peft_config = peft.LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"],
            task_type="CAUSAL_LM",
        )

    config = GRPOConfig(
        output_dir=spec["output_dir"],
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1,
        seed=spec["seed"],
        use_cpu=not cuda,
        bf16=False,
        fp16=False,  # fp32 like our side (GRPOConfig defaults to bf16)
        gradient_checkpointing=False,  # GRPOConfig's default is on; ours is off
        disable_dropout=True,  # our engine turns dropout off
        learning_rate=spec["learning_rate"],
        lr_scheduler_type="constant",
        weight_decay=0.0,
        per_device_train_batch_size=B,  # completions per step: B/G prompts x G answers
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,  # one optimizer step on each generation batch, as our one PPO epoch
        num_generations=G,
        max_steps=iterations,
        max_completion_length=L,
        # Every completion exactly L tokens, as our side's min_new_tokens forces: the same number of
        # generated and trained answer tokens on both sides.
        generation_kwargs={"min_new_tokens": L},
        temperature=spec["temperature"],
        top_k=0,
        top_p=1.0,
        # TRL's default beta is 0.0 (no reference model); with beta > 0 it runs the reference forward
        # our PPO runs for its KL penalty, the same coefficient as the PPO comparison's kl_coef.
        beta=spec["beta"],
        shuffle_dataset=False,
        dataloader_num_workers=0,
    )

    marks: dict = {}  # perf_counter() of the current iteration's phase boundaries

    def report(state) -> dict:
        # TRL logs a step's reward after on_step_end: the last one it has kept is this step's
        rewards = trainer._metrics["train"].get("reward") or [None]
        return {"answer_tokens": marks["answer_tokens"], "score_mean": rewards[-1]}

    dataset = Dataset.from_dict({"prompt": prompts * iterations})
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=RewardModelFunction(reward, tokenizer),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[Pacer(start, marks, report)],
        peft_config=peft_config,
    )

    original_generate, original_rollout = trainer._generate, trainer._generate_and_score_completions

    def timed_generate(*args, **kwargs):
        out = original_generate(*args, **kwargs)
        marks["generation_end"] = time.perf_counter()
        return out

    def timed_rollout(*args, **kwargs):
        out = original_rollout(*args, **kwargs)
        marks["training_start"] = time.perf_counter()
        prompt, answer, mask = out["prompt_ids"], out["completion_ids"], out["completion_mask"]
        assert answer.shape == (B, L) and bool(mask.all()), "answers were not full length"
        marks["sequence_shape"] = [B, prompt.shape[1] + answer.shape[1]]  # (batch, prompt + answer tokens)
        marks["answer_tokens"] = int(mask.sum())
        return out

    trainer._generate, trainer._generate_and_score_completions = timed_generate, timed_rollout
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
