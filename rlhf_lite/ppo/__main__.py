"""Step 3: PPO of the SFT model (actor) against the reward model (critic + reward), our engine.

python -m rlhf_lite.ppo --config recipes/configs/demo/ppo.yaml [--field value ...]
"""

import sys

from accelerate.utils import set_seed

from ..args import claim_output_dir, parse, preset_name, run_record
from ..data.chat_template import set_chat_template
from ..errors import cli
from ..metrics import append_metrics
from ..models import load_tokenizer
from ..progress import Progress, write
from ..training import DeferredInterrupt, step_rows
from .checkpoint import export_models, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import PPOArguments
from .data import PromptBatches, encode_prompts, ptx_batches
from .engine import RLHFEngine, make_accelerator
from .trainer import NonFiniteError, PPOTrainer, total_updates


def main(argv=None):
    (args,) = parse([PPOArguments], "ppo", argv)
    args.fill_model_paths(preset_name(sys.argv[1:] if argv is None else argv))
    acc = make_accelerator(
        log_with="tensorboard" if args.report_to == "tensorboard" else None, project_dir=args.output_dir
    )
    rows, _ = step_rows(args, 2, need_answers=False, model=args.actor_model_name_or_path)
    resume = claim_output_dir(args.output_dir, run_record(args), args.overwrite_output_dir)
    set_seed(args.seed)

    tokenizer = load_tokenizer(args.actor_model_name_or_path, trust_remote_code=args.trust_remote_code)
    set_chat_template(tokenizer, keep_own=args.chat_template)
    ids = encode_prompts(tokenizer, rows, args.max_prompt_seq_len)
    prompts = PromptBatches(ids, args, tokenizer.pad_token_id, acc.process_index, acc.num_processes, acc.device)
    iters = total_updates(len(prompts), args)
    engine = RLHFEngine(args.actor_model_name_or_path, args.critic_model_name_or_path, tokenizer, iters, args, acc)
    trainer = PPOTrainer(engine, args)
    checkpoint = latest_checkpoint(args.output_dir) if resume else None
    state = load_checkpoint(trainer, checkpoint) if checkpoint else {"batches_done": 0, "reward_ema": None}
    if args.ptx_datasets:
        trainer.ptx_batches = ptx_batches(args, tokenizer, acc.device, skip=trainer.global_step)
    acc.init_trackers("runs")

    buffer, done, shown = [], state["batches_done"], {}
    trained = done  # batches whose experience has been trained on
    bar = Progress(len(prompts), "ppo", initial=done, disable=not acc.is_main_process)
    try:
        with DeferredInterrupt() as interrupt:
            for step, batch in prompts.batches(done):
                exp = trainer.generate_experience(batch)
                if exp is None:
                    write(f"batch {step + 1}: every answer was only EOS; nothing to train on", sys.stderr)
                else:
                    buffer.append(exp)
                done = step + 1
                if done % args.generation_batches and done < len(prompts):
                    continue
                if buffer:
                    trainer.train_rlhf(buffer)
                    stats, score = trainer.stats, trainer.stats["reward/score"]
                    ema = state["reward_ema"]
                    stats["reward/score_ema"] = state["reward_ema"] = score if ema is None else 0.9 * ema + 0.1 * score
                    if done % args.logging_steps == 0 or done == len(prompts):
                        acc.log(stats, step=done)
                        if acc.is_main_process:
                            append_metrics(args.output_dir, {"step": done, **stats})
                    shown = {"reward": score, "kl": stats["kl/sequence_k3"]}
                    every = args.print_answers_interval
                    if every and done % every == 0 and acc.is_main_process:
                        exp, P = buffer[-1], buffer[-1].prompt_len
                        texts = tokenizer.batch_decode([exp.seq[0, :P], exp.seq[0, P:]], skip_special_tokens=True)
                        prompt, answer = (t.strip() for t in texts)
                        write(f"--- step {done} | score {exp.scores[0]:.3f}\n{prompt}\n>>> {answer}")
                buffer, trained = [], done
                if args.save_steps and done % args.save_steps == 0:
                    save_checkpoint(trainer, args.output_dir, done, state, args.save_total_limit)
                bar.update(done - bar.n, **shown)
                if done < len(prompts) and interrupt.on_any_process(acc.device):
                    raise KeyboardInterrupt  # Ctrl-C: stop where everything generated has been trained on
    except (NonFiniteError, KeyboardInterrupt) as err:
        # The failed update was not applied: keep what was trained, resumable from `trained`. After
        # a NaN no older checkpoint is rotated away: the weights may have diverged before it showed.
        keep = 0 if isinstance(err, NonFiniteError) else args.save_total_limit
        path = save_checkpoint(trainer, args.output_dir, trained, state, keep)
        if isinstance(err, NonFiniteError):  # the same error, told where it happened and what was kept
            err.args = (f"{err} (generation batch {step + 1}; the state after batch {trained} is in {path})",)
        raise
    bar.close()
    save_checkpoint(trainer, args.output_dir, done, state, args.save_total_limit)
    export_models(engine, trainer, args.output_dir, args.merge_lora)
    acc.end_training()


if __name__ == "__main__":
    cli(main)
