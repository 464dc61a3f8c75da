"""Step 3 (PPO) end to end on tiny models: the recipe trains and saves standard folders, the
DeepSpeed-Chat-style API (RLHFEngine + PPOTrainer) behaves as documented, runs resume exactly,
and bad input stops with one readable line."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaForCausalLM

from rlhf_lite.errors import ConfigError, cli
from rlhf_lite.models import load_tokenizer
from rlhf_lite.ppo import (
    NonFiniteError,
    PPOArguments,
    PPOTrainer,
    PromptBatches,
    RLHFEngine,
    answer_mask,
    encode_prompts,
    export_models,
    total_updates,
)
from rlhf_lite.ppo.maths import token_logprobs
from rlhf_lite.training import step_rows
from tests.test_recipes import metrics, recipe, run_cli, separable_pairs
from tests.tiny_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
# Every metric the issue asks metrics.jsonl to carry.
KEYS = {
    "reward/score",
    "reward/score_ema",
    "kl/sequence",
    "kl/coef",
    "loss/actor",
    "loss/critic",
    "values/mean",
    "advantages/mean",
    "advantages/std",
    "clipfrac/actor",
    "clipfrac/critic",
    "answer/length",
    "answer/eos_share",
    "time/generation",
    "time/scoring",
    "time/training",
}
# On two shared cores, several OpenMP threads on 32-wide matrices are ~100x slower than one.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppo")
    return {
        "sft": make_tiny_model(root, "llama", "causal"),
        "rm": make_tiny_model(root, "llama", "reward", seed=1),
        "opt_rm": make_tiny_model(root, "opt", "reward"),
        "data": separable_pairs(root / "pairs"),
    }  # 60 train rows: 20 PPO prompts with 1,1,1


def ppo_args(tiny, out, *extra):
    return [
        "--actor_model_name_or_path",
        str(tiny["sft"]),
        "--critic_model_name_or_path",
        str(tiny["rm"]),
        "--datasets",
        str(tiny["data"]),
        "--data_split",
        "1,1,1",
        "--output_dir",
        str(out),
        "--max_answer_seq_len",
        "8",
        "--per_device_generation_batch_size",
        "4",
        "--per_device_training_batch_size",
        "2",
        "--report_to",
        "none",
        *extra,
    ]


def run_ppo(argv):
    recipe("ppo")(list(map(str, argv)))


def weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


def differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if k in b)


def api_args(tiny, out, **kw) -> PPOArguments:
    values = dict(
        datasets=[str(tiny["data"])],
        data_split="1,1,1",
        output_dir=str(out),
        max_answer_seq_len=8,
        per_device_generation_batch_size=4,
        per_device_training_batch_size=2,
        report_to="none",
    )
    return PPOArguments(**(values | kw))


def api(tiny, args: PPOArguments, num_total_iters: int = 4):
    """(tokenizer, engine, trainer, prompt batches) built the way the issue's API is used."""
    tok = load_tokenizer(str(tiny["sft"]))
    rows, _ = step_rows(args, part=2, need_pairs=False)
    prompts = PromptBatches(encode_prompts(tok, rows, args.max_prompt_seq_len), args, tok.pad_token_id)
    engine = RLHFEngine(
        actor_model_name_or_path=str(tiny["sft"]),
        critic_model_name_or_path=str(tiny["rm"]),
        tokenizer=tok,
        num_total_iters=num_total_iters,
        args=args,
    )
    return tok, engine, PPOTrainer(engine=engine, args=args), prompts


def sft_logprobs(tiny, exp, temperature: float = 1.0) -> torch.Tensor:
    """log p_SFT of the experience's answer tokens, from a plain transformers copy of the SFT model
    (its logits divided by `temperature`)."""
    sft = AutoModelForCausalLM.from_pretrained(tiny["sft"]).eval()
    mask = exp.attention_mask
    with torch.no_grad():
        logits = sft(input_ids=exp.seq, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits
    P = exp.prompt_len
    return token_logprobs(logits[:, P - 1 : -1] / temperature, exp.seq[:, P:])


# ------------------------------------------------------------------ 1. the recipe, plain python


def test_recipe_trains_saves_standard_folders_and_logs(tiny, tmp_path, capsys):
    out = tmp_path / "ppo"
    run_ppo(
        ppo_args(
            tiny,
            out,
            "--max_steps",
            "3",
            "--report_to",
            "tensorboard",
            "--print_answers_interval",
            "2",
            "--actor_learning_rate",
            "1e-3",
            "--critic_learning_rate",
            "1e-3",
        )
    )
    assert capsys.readouterr().out.count(">>> ") == 1  # a sample answer at step 2
    actor = AutoModelForCausalLM.from_pretrained(out / "actor")
    critic = AutoModelForSequenceClassification.from_pretrained(out / "critic")
    assert critic.config.num_labels == 1 and actor.config.pad_token_id is not None
    assert differs(weights(out / "actor"), weights(tiny["sft"]))
    assert differs(weights(out / "critic"), weights(tiny["rm"]))
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert KEYS <= set(row), KEYS - set(row)
        assert all(isinstance(row[k], (int, float)) and row[k] == row[k] for k in KEYS)  # numbers, no NaN
    assert rows[0]["kl/sequence"] == 0.0  # the first batch comes from the reference policy itself
    assert rows[-1]["lr/actor"] == 0.0  # the cosine schedule was sized to the run's 3 x 2 updates
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    assert (out / "checkpoint-3" / "trainer_state.json").exists()


@pytest.mark.parametrize("family", ["opt", "bloom"])
def test_other_families_train_with_gradient_checkpointing(tiny, tmp_path, family):
    models = {kind: make_tiny_model(tmp_path, family, kind) for kind in ("causal", "reward")}
    out = tmp_path / "out"
    run_ppo(
        ppo_args(
            tiny,
            out,
            "--actor_model_name_or_path",
            models["causal"],
            "--critic_model_name_or_path",
            models["reward"],
            "--max_steps",
            "2",
            "--actor_gradient_checkpointing",
            "true",
            "--critic_gradient_checkpointing",
            "true",
            "--actor_learning_rate",
            "1e-3",
        )
    )
    assert len(metrics(out)) == 2 and metrics(out)[0]["kl/sequence"] == pytest.approx(0.0, abs=1e-6)
    assert differs(weights(out / "actor"), weights(models["causal"]))
    assert differs(weights(out / "critic"), weights(models["reward"]))


# ------------------------------------------------------------------ 2. LoRA: no reference copy


def test_lora_actor_and_critic_use_the_actor_without_adapter_as_reference(tiny, tmp_path):
    args = api_args(
        tiny,
        tmp_path / "lora",
        actor_lora_dim=4,
        critic_lora_dim=4,
        actor_learning_rate=1e-2,
        critic_learning_rate=1e-2,
    )
    tok, engine, trainer, prompts = api(tiny, args)
    assert engine.ref is None
    batches = prompts.batches()
    exp = trainer.generate_experience(next(batches)[1])
    assert torch.equal(exp.ref_logprobs, exp.logprobs)  # an untrained adapter adds exactly 0
    torch.testing.assert_close(exp.ref_logprobs, sft_logprobs(tiny, exp), atol=1e-5, rtol=0)
    trainer.train_rlhf(exp)
    later = trainer.generate_experience(next(batches)[1])
    assert not torch.allclose(later.logprobs, later.ref_logprobs)  # the actor moved ...
    torch.testing.assert_close(later.ref_logprobs, sft_logprobs(tiny, later), atol=1e-5, rtol=0)  # ... not the ref

    export_models(engine, trainer, tmp_path / "out")
    actor_dir = tmp_path / "out" / "actor"
    assert not list(actor_dir.glob("adapter*")) and (actor_dir / "model.safetensors").exists()
    AutoModelForCausalLM.from_pretrained(actor_dir)
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "critic")
    assert differs(weights(actor_dir), weights(tiny["sft"]))
    assert differs(weights(tmp_path / "out" / "critic"), weights(tiny["rm"]))


# ------------------------------------------------------------------ 3. the issue's API


def test_api_of_the_issue(tiny, tmp_path):
    args = api_args(tiny, tmp_path / "api")
    tok, engine, trainer, prompts = api(tiny, args, num_total_iters=2)
    assert engine.ref is not None
    out = trainer.generate_experience(next(prompts.batches())[1])
    actor_loss, critic_loss = trainer.train_rlhf(out)
    assert type(actor_loss) is float and type(critic_loss) is float
    assert trainer.global_step == 2  # 4 experiences in mini-batches of 2
    P = out.prompt_len
    assert out.mask.shape == out.logprobs.shape == out.values.shape == (4, out.seq.shape[1] - P)
    # DeepSpeed-Chat's attention mask: the prompt's, then the answer's tokens up to its first EOS
    assert torch.equal(out.attention_mask[:, P:], out.mask.long())


def test_answer_mask_covers_tokens_up_to_and_including_the_first_eos():
    eos = 2
    answers = torch.tensor(
        [
            [5, 6, 2, 7, 2],  # garbage after EOS is masked too
            [2, 9, 9, 9, 9],  # only EOS
            [5, 6, 7, 8, 9],  # never stopped
            [5, 2, 0, 0, 0],
        ]
    )  # padded after EOS
    assert answer_mask(answers, eos).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]


def with_eos_at(trainer, positions: dict[int, int]):
    """Make the actor's generate put EOS at answer position positions[row] (garbage stays after it)."""
    actor = trainer.engine.actor
    real = actor.generate

    def generate(**kw):
        seq = real(**kw)
        P = kw["input_ids"].shape[1]
        if seq.shape[1] < P + 4:  # every answer stopped early: make room
            seq = torch.cat([seq, seq.new_full((seq.shape[0], P + 4 - seq.shape[1]), 7)], 1)
        seq[:, P:] = torch.where(seq[:, P:] == trainer.eos_id, 7, seq[:, P:])  # no EOS but ours
        for row, pos in positions.items():
            seq[row, P + pos] = trainer.eos_id
        return seq

    actor.generate = generate


def test_empty_answers_are_dropped_and_counted(tiny, tmp_path):
    args = api_args(tiny, tmp_path / "empty", min_new_tokens=0)
    tok, engine, trainer, prompts = api(tiny, args)
    batches = prompts.batches()
    with_eos_at(trainer, {0: 0, 1: 2, 3: 0})  # rows 0 and 3 answer only EOS
    exp = trainer.generate_experience(next(batches)[1])
    assert exp.n_empty == 2 and len(exp.seq) == 2 and len(exp.scores) == 2
    assert exp.mask[0, :3].tolist() == [1, 1, 1] and not exp.mask[0, 3:].any()  # old row 1: EOS at 2
    assert exp.has_eos.tolist() == [True, False]
    trainer.train_rlhf(exp)
    assert trainer.stats["answer/empty_dropped"] == 2
    assert trainer.global_step == 1  # 2 experiences left: one mini-batch

    with_eos_at(trainer, dict.fromkeys(range(4), 0))
    assert trainer.generate_experience(next(batches)[1]) is None  # nothing to learn from
    with_eos_at(trainer, {0: 0})
    trainer.train_rlhf(trainer.generate_experience(next(batches)[1]))
    assert trainer.stats["answer/empty_dropped"] == 5  # the 4 of the skipped batch are not lost


def test_recipe_skips_a_batch_of_empty_answers_and_counts_it(tiny, tmp_path, monkeypatch, capsys):
    real, calls = LlamaForCausalLM.generate, []

    def generate(self, **kw):
        seq = real(self, **kw)
        calls.append(1)
        if len(calls) == 1:  # the first batch answers only EOS
            seq[:, kw["input_ids"].shape[1]] = self.generation_config.eos_token_id
        return seq

    monkeypatch.setattr(LlamaForCausalLM, "generate", generate)
    out = tmp_path / "skipped"
    run_ppo(ppo_args(tiny, out, "--max_steps", "2", "--min_new_tokens", "0"))
    assert "batch 1: every answer was only EOS" in capsys.readouterr().err
    rows = metrics(out)
    assert [r["step"] for r in rows] == [2] and rows[0]["answer/empty_dropped"] == 4


# ------------------------------------------------------------------ 4. buffering and epochs


def test_generation_batches_buffer_and_ppo_epochs_repeat(tiny, tmp_path):
    def state(out):
        return json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["trainer"]["global_step"]

    one = tmp_path / "one"
    run_ppo(ppo_args(tiny, one, "--max_steps", "4"))
    assert [r["step"] for r in metrics(one)] == [1, 2, 3, 4] and state(one) == 8  # 4 x (4 / 2)
    buffered = tmp_path / "buffered"
    run_ppo(ppo_args(tiny, buffered, "--max_steps", "4", "--generation_batches", "2"))
    assert [r["step"] for r in metrics(buffered)] == [2, 4] and state(buffered) == 8
    epochs = tmp_path / "epochs"
    run_ppo(ppo_args(tiny, epochs, "--max_steps", "4", "--ppo_epochs", "2"))
    assert len(metrics(epochs)) == 4 and state(epochs) == 16
    partial = tmp_path / "partial"  # 3 batches, buffers of 2: the last, half-full buffer trains too
    run_ppo(ppo_args(tiny, partial, "--max_steps", "3", "--generation_batches", "2"))
    assert [r["step"] for r in metrics(partial)] == [2, 3] and metrics(partial)[-1]["lr/actor"] == 0.0


def test_total_updates_counts_every_optimizer_step():
    def count(**kw):
        args = PPOArguments(**({"per_device_generation_batch_size": 4, "per_device_training_batch_size": 2} | kw))
        return total_updates(len(PromptBatches([[1]] * 20, args, pad_id=0)), args)  # 20 prompts

    assert count() == 10  # 5 batches x 2 mini-batches
    assert count(ppo_epochs=2) == 20
    assert count(max_steps=3, generation_batches=2) == 6  # the last, half-full buffer trains too
    assert count(generation_batches=2, per_device_training_batch_size=8) == 5  # each experience: 1 mini-batch


# ------------------------------------------------------------------ 5. EMA, PTX, adaptive KL


def test_ema_actor_is_exported_and_is_the_average_of_the_weights(tiny, tmp_path):
    out = tmp_path / "ema"
    # one optimizer step: ema = beta * sft + (1 - beta) * actor
    run_ppo(
        ppo_args(
            tiny,
            out,
            "--max_steps",
            "1",
            "--per_device_training_batch_size",
            "4",
            "--enable_ema",
            "true",
            "--ema_beta",
            "0.9",
            "--actor_learning_rate",
            "1e-3",
        )
    )
    ema, actor, sft = weights(out / "actor_ema"), weights(out / "actor"), weights(tiny["sft"])
    AutoModelForCausalLM.from_pretrained(out / "actor_ema")
    assert differs(ema, actor) and differs(actor, sft)
    for k in actor:
        torch.testing.assert_close(ema[k], 0.9 * sft[k] + 0.1 * actor[k], atol=1e-6, rtol=1e-5)


def test_ptx_loss_is_logged(tiny, tmp_path):
    out = tmp_path / "ptx"
    run_ppo(ppo_args(tiny, out, "--max_steps", "2", "--ptx_datasets", tiny["data"], "--ptx_coef", "1"))
    assert all(r["loss/ptx"] > 0 for r in metrics(out))


def test_adaptive_kl_coefficient_moves_and_fixed_one_does_not(tiny, tmp_path):
    run_ppo(ppo_args(tiny, tmp_path / "adaptive", "--max_steps", "3", "--target_kl", "0.01", "--kl_horizon", "100"))
    coefs = [r["kl/coef"] for r in metrics(tmp_path / "adaptive")]
    assert len(set(coefs)) == 3 and coefs[0] < 0.1  # KL ~ 0 below the target: the coefficient shrinks
    run_ppo(ppo_args(tiny, tmp_path / "fixed", "--max_steps", "3"))
    assert {r["kl/coef"] for r in metrics(tmp_path / "fixed")} == {0.1}


# ------------------------------------------------------------------ 6. resume


def same_final_metrics(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for k in a:
        if not k.startswith("time/"):
            assert b[k] == pytest.approx(a[k], abs=1e-4, rel=1e-4), k


def test_resume_after_a_crash_gives_the_uninterrupted_result(tiny, tmp_path):
    out = tmp_path / "run"
    argv = ppo_args(
        tiny,
        out,
        "--max_steps",
        "4",
        "--save_steps",
        "2",
        "--save_total_limit",
        "3",
        "--ptx_datasets",
        tiny["data"],
        "--ptx_coef",
        "0.5",
        "--target_kl",
        "0.01",
        "--kl_horizon",
        "100",
        "--enable_ema",
        "true",
        "--actor_learning_rate",
        "1e-3",
    )
    run_ppo(argv)
    uninterrupted, final = metrics(out)[-1], weights(out / "actor")
    ema, state = weights(out / "actor_ema"), (out / "checkpoint-4" / "trainer_state.json").read_text()
    # The crash: after checkpoint-2 was written, before anything later was.
    for gone in ("checkpoint-4", "actor", "actor_ema", "critic"):
        shutil.rmtree(out / gone)
    (out / "metrics.jsonl").write_text(
        "".join(line + "\n" for line in (out / "metrics.jsonl").read_text().splitlines()[:2])
    )
    run_ppo(argv)
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    same_final_metrics(uninterrupted, rows[-1])
    resumed = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert resumed["batches_done"] == 4 and resumed["trainer"]["global_step"] == 8  # a second resume starts right
    state = json.loads(state)
    assert resumed["trainer"]["kl_ctl"]["value"] == pytest.approx(state["trainer"]["kl_ctl"]["value"], rel=1e-5)
    assert resumed["reward_ema"] == pytest.approx(state["reward_ema"], abs=1e-4)
    for k, v in weights(out / "actor").items():
        torch.testing.assert_close(v, final[k], atol=1e-5, rtol=1e-4)
    for k, v in weights(out / "actor_ema").items():
        torch.testing.assert_close(v, ema[k], atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_sigkill_then_rerun_finishes_with_the_uninterrupted_metrics(tmp_path):
    tiny = {
        "sft": make_tiny_model(tmp_path, "llama", "causal"),
        "rm": make_tiny_model(tmp_path, "llama", "reward"),
        "data": separable_pairs(tmp_path / "pairs", n_train=240),
    }  # 80 prompts, 20 batches
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT)}

    def command(out):
        return [
            sys.executable,
            str(ROOT / "recipes" / "ppo.py"),
            *ppo_args(tiny, out, "--max_answer_seq_len", "24", "--save_steps", "2", "--seed", "7"),
        ]

    reference = tmp_path / "uninterrupted"
    done = subprocess.run(command(reference), capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (out / "actor").exists()  # really killed mid-run
    rerun = subprocess.run(command(out), capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    same_final_metrics(metrics(reference)[-1], metrics(out)[-1])
    for k, v in weights(out / "actor").items():
        torch.testing.assert_close(v, weights(reference / "actor")[k], atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------ 7. bad input: one line, exit 2


def fails(argv, capsys) -> str:
    """stderr of the recipe run through `cli`, which must exit with status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: run_ppo(argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: " in err
    return err[err.index("error: ") :]


def test_actor_and_reward_model_with_different_tokenizers(tiny, tmp_path, capsys):
    err = fails(ppo_args(tiny, tmp_path / "o", "--critic_model_name_or_path", tiny["opt_rm"]), capsys)
    assert "different tokenizers" in err and str(tiny["opt_rm"]) in err and len(err.strip().splitlines()) == 1


def test_critic_that_is_not_a_reward_model(tiny, tmp_path, capsys):
    err = fails(ppo_args(tiny, tmp_path / "o", "--critic_model_name_or_path", tiny["sft"]), capsys)
    assert "is not a reward model" in err and len(err.strip().splitlines()) == 1


def test_buffer_not_divisible_into_training_batches(tiny, tmp_path):
    # through the real command line once: exit status 2 and one line, before any model is read
    code, err = run_cli(
        "ppo",
        ppo_args(
            tiny,
            tmp_path / "o",
            "--per_device_generation_batch_size",
            "3",
            "--generation_batches",
            "1",
            "--per_device_training_batch_size",
            "2",
            "--actor_model_name_or_path",
            "/nonexistent",
        ),
        tmp_path,
    )
    assert code == 2 and err.strip().splitlines() == [
        "error: per_device_generation_batch_size x generation_batches = 3 experiences is not a multiple of "
        "per_device_training_batch_size = 2"
    ]
    assert not (tmp_path / "o").exists()  # refused before the output folder was claimed


def test_long_prompts_are_dropped_and_counted_all_too_long_is_an_error(tiny, tmp_path, capsys):
    data = tmp_path / "mixed"
    data.mkdir()
    make = lambda i, q: {"prompt": f"\n\nHuman: {q} {i}?\n\nAssistant:", "chosen": " yes", "rejected": " no"}  # noqa: E731
    long = "please explain how a language model generates text one token at a time"
    rows = [make(i, "question" if i % 2 else long) for i in range(60)]
    for split in ("train", "eval"):
        (data / f"{split}.json").write_text(json.dumps(rows))
    tok = load_tokenizer(str(tiny["sft"]))
    lengths = {q: len(tok(make(1, q)["prompt"])["input_ids"]) for q in ("question", long)}
    limit = lengths["question"] + 1
    assert lengths[long] > limit
    out = tmp_path / "dropped"
    run_ppo(ppo_args(tiny, out, "--datasets", data, "--max_steps", "1", "--max_prompt_seq_len", limit))
    err = capsys.readouterr().err
    assert "ppo prompts: dropped" in err and "max_prompt_seq_len" in err
    assert len(metrics(out)) == 1

    err = fails(
        ppo_args(tiny, tmp_path / "o", "--datasets", data, "--max_prompt_seq_len", lengths["question"] - 1), capsys
    )
    assert f"max_prompt_seq_len {lengths['question'] - 1} is shorter than every" in err
    assert f"the shortest has {lengths['question']} tokens" in err


def test_missing_step_outputs_name_the_command_that_makes_them(tiny, tmp_path, monkeypatch, capsys):
    config = tmp_path / "configs" / "mypreset" / "ppo.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"datasets: [{tiny['data']}]\ndata_split: 1,1,1\nreport_to: none\n")
    monkeypatch.chdir(tmp_path)
    err = fails(["--config", config], capsys)
    assert "make sft PRESET=mypreset" in err and "outputs/mypreset/sft" in err
    shutil.copytree(tiny["sft"], tmp_path / "outputs" / "mypreset" / "sft")
    err = fails(["--config", config], capsys)
    assert "make rm PRESET=mypreset" in err and "--critic_model_name_or_path" in err
    assert not (tmp_path / "outputs" / "mypreset" / "ppo").exists()


def test_nan_reward_stops_with_the_step_and_keeps_a_checkpoint(tiny, tmp_path, capsys, monkeypatch):
    real, calls = RLHFEngine.reward_scores, []

    def scores(self, **inputs):
        calls.append(1)
        out = real(self, **inputs)
        return out * float("nan") if len(calls) == 4 else out

    monkeypatch.setattr(RLHFEngine, "reward_scores", scores)
    out = tmp_path / "nan"
    err = fails(ppo_args(tiny, out, "--max_steps", "6", "--save_steps", "2"), capsys)
    assert len(err.strip().splitlines()) == 1 and err.count("is NaN or infinite") == 1
    assert "the reward model's score" in err and "optimizer step 6" in err  # 3 batches x 2 updates
    assert "generation batch 4" in err and str(out / "checkpoint-3") in err
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["batches_done"] == 3 and state["trainer"]["global_step"] == 6
    assert (out / "checkpoint-2" / "trainer_state.json").exists()  # the periodic one is not rotated away
    assert not (out / "actor").exists()


def test_diverging_weights_stop_with_one_line_instead_of_a_sampling_traceback(
    tiny, tmp_path, capsys, diverging_optimizer
):
    out = tmp_path / "huge"
    err = fails(
        ppo_args(tiny, out, "--max_steps", "4", "--per_device_training_batch_size", "4", "--max_grad_norm", "0"),
        capsys,
    )
    assert len(err.strip().splitlines()) == 1
    assert "the actor's next-token distribution is NaN or infinite at optimizer step 1" in err
    assert "generation batch 2" in err and (out / "checkpoint-1" / "trainer_state.json").exists()


def test_nan_loss_is_not_applied(tiny, tmp_path, diverging_optimizer):
    args = api_args(tiny, tmp_path / "huge", max_grad_norm=0.0)
    tok, engine, trainer, prompts = api(tiny, args)
    exp = trainer.generate_experience(next(prompts.batches())[1])
    with pytest.raises(NonFiniteError, match="the PPO loss is NaN or infinite at optimizer step 1") as err:
        trainer.train_rlhf(exp)  # the first mini-batch's update blows the weights up, the second sees NaN
    assert err.value.step == trainer.global_step == 1


def test_python_api_refuses_bad_arguments():
    with pytest.raises(ConfigError, match="not a multiple"):
        PPOArguments(per_device_generation_batch_size=4, generation_batches=1, per_device_training_batch_size=3)


# ------------------------------------------------------------------ 8. accelerate launch + DeepSpeed


def launch(tiny, out, zero, *extra, processes=1, timeout=600):
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "accelerate_configs" / f"{zero}.yaml"),
        "--num_processes",
        str(processes),
        str(ROOT / "recipes" / "ppo.py"),
        *ppo_args(tiny, out, "--max_steps", "2", *extra),
    ]
    env = {**os.environ, **ONE_THREAD}
    try:  # a ZeRO-3 generation that hangs must fail the test, not the CI job
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{zero} x {processes} timed out after {timeout}s:\n{(e.stderr or b'')[-3000:]}")


@pytest.mark.slow
def test_ema_under_zero3_is_refused_before_loading_models(tiny, tmp_path):
    proc = launch(tiny, tmp_path / "out", "zero3", "--enable_ema", "true")
    assert proc.returncode != 0 and "error: enable_ema needs the actor's full weights" in proc.stderr
    assert "Loading weights" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_accelerate_launch_with_deepspeed(tiny, tmp_path, zero, lora, processes):
    out = tmp_path / "out"
    extra = ["--actor_lora_dim", "4", "--critic_lora_dim", "4"] if lora else []
    if zero == "zero2":  # one mini-batch per experience: the scoring forwards double as the update's
        extra += ["--per_device_training_batch_size", "4"]
    proc = launch(
        tiny, out, zero, *extra, "--actor_learning_rate", "1e-3", "--critic_learning_rate", "1e-3", processes=processes
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert [r["step"] for r in metrics(out)] == [1, 2]
    assert all(KEYS <= set(r) for r in metrics(out))
    assert not list((out / "actor").glob("adapter*"))
    AutoModelForCausalLM.from_pretrained(out / "actor")
    AutoModelForSequenceClassification.from_pretrained(out / "critic")
    assert differs(weights(out / "actor"), weights(tiny["sft"]))
    assert differs(weights(out / "critic"), weights(tiny["rm"]))
    # resumable: the same command again finds the finished run's checkpoint and does nothing new
    again = launch(
        tiny, out, zero, *extra, "--actor_learning_rate", "1e-3", "--critic_learning_rate", "1e-3", processes=processes
    )
    assert again.returncode == 0, again.stderr[-5000:]
    assert len(metrics(out)) == 2
