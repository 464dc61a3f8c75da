"""Step 3's inputs: left-padded prompt batches in a seeded, resumable order, and the pretraining mix."""

import sys
from collections.abc import Iterator

import torch

from ..batching import pad_batch
from ..data import load_step_rows
from ..encoding import keep_short_prompts
from ..errors import DataError
from .config import PPOArguments


def encode_prompts(tokenizer, rows: list[dict], max_prompt_seq_len: int) -> list[list[int]]:
    """Token ids of each prompt; longer ones are dropped and counted (truncated, it would ask another question)."""
    ids = tokenizer([r["prompt"] for r in rows], add_special_tokens=True)["input_ids"]
    setting = f"max_prompt_seq_len {max_prompt_seq_len}"
    return keep_short_prompts(ids, [len(x) for x in ids], max_prompt_seq_len, "ppo", setting)


class PromptBatches:
    """Generation batches of prompts: a new seeded order each epoch, each process its own slice.
    `batches(start)` resumes at global batch `start` with the prompts an uninterrupted run sees."""

    def __init__(
        self, prompts: list[list[int]], args: PPOArguments, pad_id: int, process_index=0, num_processes=1, device="cpu"
    ):
        self.prompts, self.args, self.pad_id, self.device = prompts, args, pad_id, device
        self.rank, self.world = process_index, num_processes
        self.per_epoch = len(prompts) // (args.per_device_generation_batch_size * num_processes)
        if self.per_epoch == 0:
            raise DataError(
                f"{len(prompts)} prompts are fewer than one generation batch "
                f"({args.per_device_generation_batch_size} x {num_processes} processes)"
            )
        self.total = self.per_epoch * args.num_train_epochs
        if args.max_steps > 0:
            self.total = min(self.total, args.max_steps)

    def __len__(self) -> int:
        return self.total

    def batches(self, start: int = 0) -> Iterator[tuple[int, dict]]:
        bs = self.args.per_device_generation_batch_size
        for step in range(start, self.total):
            epoch, i = divmod(step, self.per_epoch)
            if step == start or i == 0:  # one seeded shuffle per epoch, whatever step it resumes at
                seeded = torch.Generator().manual_seed(self.args.seed + epoch)
                order = torch.randperm(len(self.prompts), generator=seeded)
            first = (i * self.world + self.rank) * bs
            ids, mask = pad_batch([self.prompts[j] for j in order[first : first + bs].tolist()], self.pad_id, "left")
            yield step, {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}


def ptx_batches(args: PPOArguments, tokenizer, device, skip: int = 0) -> Iterator[dict]:
    """Endless language-modelling batches of prompt + chosen + EOS, past the first `skip` (resumed)."""
    rows, reports = load_step_rows(args.ptx_datasets, "train", seed=args.seed, data_dir=args.data_dir)
    for report in reports:
        if report.total_dropped:
            print(report.summary(), file=sys.stderr)
    if not rows:
        raise DataError(f"ptx_datasets {args.ptx_datasets} hold no usable rows")
    eos = tokenizer.eos_token or ""
    max_len = args.max_prompt_seq_len + args.max_answer_seq_len
    ids = tokenizer([r["prompt"] + r["chosen"] + eos for r in rows], truncation=True, max_length=max_len)["input_ids"]
    generator, batch_size = torch.Generator().manual_seed(args.seed), args.per_device_training_batch_size
    while True:
        order = torch.randperm(len(ids), generator=generator).tolist()
        for first in range(0, len(order) - batch_size + 1, batch_size):
            if skip:
                skip -= 1
                continue
            input_ids, mask = pad_batch([ids[j] for j in order[first : first + batch_size]], tokenizer.pad_token_id)
            labels = input_ids.masked_fill(mask == 0, -100)
            yield {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
