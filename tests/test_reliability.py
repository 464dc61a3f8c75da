"""Reliability: a run killed (SIGKILL) or interrupted (Ctrl-C) and started again with the same
command ends where an uninterrupted run ends; a checkpoint cut short while saving is never resumed
from; a NaN loss stops the run; bad input stops with its place or is counted; nothing unsafe is
unpickled and no remote code runs unless asked for; one seed gives one run.

The uninterrupted runs are computed once per module and compared with every interrupted one.
"""

import ast
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer

from rlhf_lite.errors import ModelError, cli
from rlhf_lite.ppo import PPOArguments
from rlhf_lite.ppo.checkpoint import latest_checkpoint
from rlhf_lite.ppo.trainer import PPOTrainer
from rlhf_lite.resume import resume_point
from tests.test_recipes import metrics, recipe, separable_pairs
from tests.tiny_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
# The killed runs are subprocesses: one thread each, as the in-process runs (one_thread), so that
# both compute the same floating-point sums.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")


@pytest.fixture(scope="module")
def fresh_accelerate_state():
    """accelerate keeps one process-wide state: a Trainer built earlier in the session with bf16 on
    (test_recipes' RewardConfig defaults) would otherwise make the PPO runs here autocast to bf16."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


class Crash(BaseException):
    """Stands for the process dying at that point (nothing may catch it on the way out)."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    return {
        "llama": make_tiny_model(root, "llama"),
        "rm": make_tiny_model(root, "llama", "reward", seed=1),
        "data": separable_pairs(root / "pairs", n_train=240),  # 80 rows per step with 1,1,1
        "ppo_data": separable_pairs(root / "ppo_pairs"),
    }  # 20 PPO prompts: 5 batches of 4


ONLINE = ("grpo", "rloo")


def step_args(tiny, out, *extra, step="sft"):
    """Two epochs of 20 steps (GRPO and RLOO: one epoch of 40, 2 prompts x 2 answers of 8 tokens);
    dropout on, so that the RNG state matters on resume."""
    if step in ONLINE:
        lengths = ["--max_prompt_length", "32", "--max_completion_length", "8", "--num_generations", "2"]
        lengths += ["--reward_model_name_or_path", str(tiny["rm"]), "--num_train_epochs", "1"]
    else:
        lengths = ["--max_length", "64", "--num_train_epochs", "2"]
    return [
        "--model_name_or_path",
        str(tiny["llama"]),
        "--datasets",
        str(tiny["data"]),
        "--output_dir",
        str(out),
        "--data_split",
        "1,1,1",
        "--use_cpu",
        "true",
        "--report_to",
        "none",
        "--logging_steps",
        "1",
        "--seed",
        "0",
        "--disable_tqdm",
        "true",
        "--per_device_train_batch_size",
        "4",
        *lengths,
        "--learning_rate",
        "1e-3",
        "--dropout",
        "0.1",
        *extra,
    ]


def losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in metrics(out) if "loss" in r]


def weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


def assert_same_run(out: Path, reference: Path) -> None:
    """The same loss at every step (each step logged once) and the same final weights."""
    got, want = losses(out), losses(reference)
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(1, len(want) + 1))
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-4, abs=1e-5)
    final = weights(reference)
    for k, v in weights(out).items():
        torch.testing.assert_close(v, final[k], atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
    """step -> the output folder of its uninterrupted run (made on first use)."""
    runs = {}

    def get(step: str) -> Path:
        if step not in runs:
            out = tmp_path_factory.mktemp("uninterrupted") / step
            recipe(step)(step_args(tiny, out, "--save_strategy", "no", step=step))
            runs[step] = out
        return runs[step]

    return get


def looks_complete(out: Path) -> bool:
    return (out / "config.json").exists() or (out / "model.safetensors").exists()


def popen(step: str, argv: list[str], log: Path) -> subprocess.Popen:
    """The recipe as a process of its own, its stderr to `log` (a pipe nobody reads could fill up)."""
    with open(log, "w") as err:  # SIGINT as in a terminal, even if the test runner ignores it
        return subprocess.Popen(
            [sys.executable, str(ROOT / "recipes" / f"{step}.py"), *argv],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def wait_for(proc: subprocess.Popen, ready, log: Path, timeout=300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(
                f"the run ended (status {proc.returncode}) before it could be stopped:\n{log.read_text()[-3000:]}"
            )
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.02)


def logged_steps(out: Path) -> int:
    try:
        return max(
            (json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()),
            default=0,
        )
    except (OSError, ValueError):  # not there yet, or a line being written
        return 0


# ------------------------------------------------------------------ 1. steps 1 and 2: resume


@pytest.mark.parametrize("step", ["sft", "rm", "dpo", *ONLINE])
def test_sigkill_then_rerun_ends_like_the_uninterrupted_run(tiny, uninterrupted, tmp_path, step):
    out = tmp_path / step
    argv = step_args(tiny, out, "--save_steps", "2", "--save_total_limit", "2", step=step)
    proc = popen(step, argv, tmp_path / "stderr")
    wait_for(proc, lambda: (out / "checkpoint-2" / "trainer_state.json").exists(), tmp_path / "stderr")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not looks_complete(out)  # really killed mid-run: no final model
    recipe(step)(argv)  # the same command again
    assert_same_run(out, uninterrupted(step))


@pytest.mark.parametrize("step", ["sft", "rm", "dpo", *ONLINE])
def test_ctrl_c_saves_a_checkpoint_and_the_rerun_resumes_from_it(tiny, uninterrupted, tmp_path, step):
    out = tmp_path / step
    argv = step_args(tiny, out, "--save_strategy", "no", step=step)  # no periodic checkpoint: Ctrl-C's own
    proc = popen(step, argv, tmp_path / "stderr")
    wait_for(proc, lambda: logged_steps(out) >= 3, tmp_path / "stderr")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    saved = [p for p in out.iterdir() if p.name.startswith("checkpoint-")]
    assert len(saved) == 1, saved
    n = int(saved[0].name.split("-")[1])
    assert 3 <= n < 40 and f"the state after optimizer step {n} is in {saved[0]}" in err
    assert json.loads((saved[0] / "trainer_state.json").read_text())["global_step"] == n
    assert not looks_complete(out)
    recipe(step)(argv)
    assert_same_run(out, uninterrupted(step))


@pytest.mark.parametrize("step", ["sft", "rm"])
def test_a_checkpoint_cut_short_while_saving_is_not_resumed_from(tiny, uninterrupted, tmp_path, monkeypatch, step):
    out = tmp_path / step
    argv = step_args(tiny, out, "--save_steps", "2", "--save_total_limit", "1")
    real = Trainer._save_rng_state

    def dies_while_saving_checkpoint_6(self, output_dir):
        if self.state.global_step == 6:  # weights and optimizer written; RNG and trainer state not
            raise Crash
        return real(self, output_dir)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save_rng_state", dies_while_saving_checkpoint_6)
        with pytest.raises(Crash):
            recipe(step)(argv)
    partial = out / "checkpoint-6"
    assert (partial / "model.safetensors").exists() and not (partial / "trainer_state.json").exists()
    assert (out / "checkpoint-4" / "trainer_state.json").exists()  # rotation had not run yet
    assert not looks_complete(out)
    recipe(step)(argv)  # resumes from checkpoint-4, not from the newer, partial checkpoint-6
    assert_same_run(out, uninterrupted(step))


def test_resume_point_skips_and_removes_incomplete_checkpoints_and_rewinds_metrics(tmp_path):
    def checkpoint(n, state):
        (tmp_path / f"checkpoint-{n}").mkdir()
        (tmp_path / f"checkpoint-{n}" / "model.safetensors").write_bytes(b"weights")
        if state is not None:
            (tmp_path / f"checkpoint-{n}" / "trainer_state.json").write_text(state)

    checkpoint(2, json.dumps({"global_step": 2}))
    checkpoint(10, json.dumps({"global_step": 10}))
    checkpoint(12, '{"global_step": 12, "log_hist')  # killed while writing its last file
    checkpoint(14, None)  # killed before it
    rows = [json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 14)]
    (tmp_path / "metrics.jsonl").write_text("".join(rows) + '{"step": 14, "lo')
    assert resume_point(tmp_path) == str(tmp_path / "checkpoint-10")
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-2"]
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(rows[:10])  # logged again on resume
    shutil.rmtree(tmp_path / "checkpoint-10")
    shutil.rmtree(tmp_path / "checkpoint-2")
    assert resume_point(tmp_path) is None and (tmp_path / "metrics.jsonl").read_text() == ""


@pytest.mark.parametrize("step", ["sft", "rm", "dpo", *ONLINE])
def test_nan_loss_stops_before_the_update_and_exports_nothing(tiny, tmp_path, capsys, step, diverging_optimizer):
    out = tmp_path / step
    argv = step_args(tiny, out, "--max_grad_norm", "0", "--max_steps", "4", "--save_steps", "1", "--dropout", "0.0",
                     step=step)  # fmt: skip
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: recipe(step)(argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    err = err[err.index("error: ") :]
    assert len(err.strip().splitlines()) == 1, err
    assert "the training loss is NaN or infinite at optimizer step 2" in err  # step 1's update blew up
    assert "the update was not applied" in err and str(out / "checkpoint-1") in err
    assert not (out / "checkpoint-2").exists() and not looks_complete(out)
    assert all(v == v for _, v in losses(out))  # no NaN made it into the log


# ------------------------------------------------------------------ 2. step 3 (PPO): resume, determinism


def ppo_args(tiny, out, *extra):
    return [
        "--actor_model_name_or_path",
        str(tiny["llama"]),
        "--critic_model_name_or_path",
        str(tiny["rm"]),
        "--datasets",
        str(tiny["ppo_data"]),
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
        "--max_steps",
        "4",
        "--save_steps",
        "2",
        "--save_total_limit",
        "3",
        "--seed",
        "3",
        "--target_kl",
        "0.01",
        "--kl_horizon",
        "100",
        "--enable_ema",
        "true",
        "--actor_learning_rate",
        "1e-3",
        "--critic_learning_rate",
        "1e-3",
        *extra,
    ]


def run_ppo(argv):
    recipe("ppo")(list(map(str, argv)))


def assert_same_ppo_run(out: Path, reference: Path) -> None:
    got, want = metrics(out), metrics(reference)
    assert [r["step"] for r in got] == [r["step"] for r in want] == [1, 2, 3, 4]
    for a, b in zip(got, want):
        for k in b:
            if not k.startswith("time/"):
                assert a[k] == pytest.approx(b[k], abs=1e-4, rel=1e-4), (a["step"], k)
    for folder in ("actor", "critic", "actor_ema"):
        final = weights(reference / folder)
        for k, v in weights(out / folder).items():
            torch.testing.assert_close(v, final[k], atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def ppo_reference(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo") / "uninterrupted"
    run_ppo(ppo_args(tiny, out))
    return out


def test_ppo_same_seed_same_run(tiny, ppo_reference, tmp_path):
    out = tmp_path / "again"
    run_ppo(ppo_args(tiny, out))
    assert_same_ppo_run(out, ppo_reference)
    other = tmp_path / "other_seed"
    run_ppo(ppo_args(tiny, other, "--max_steps", "1", "--seed", "4"))
    assert metrics(other)[0]["reward/score"] != metrics(ppo_reference)[0]["reward/score"]


def test_ppo_crash_while_saving_keeps_the_last_checkpoint(tiny, ppo_reference, tmp_path, monkeypatch):
    out = tmp_path / "ppo"
    from accelerate import Accelerator

    real = Accelerator.save_state

    def dies_after_writing_the_state_of_batch_4(self, output_dir=None, **kw):
        path = real(self, output_dir, **kw)
        if Path(output_dir).name.endswith("-4"):
            raise Crash  # before trainer_state.json and the rename
        return path

    with monkeypatch.context() as patch:
        patch.setattr(Accelerator, "save_state", dies_after_writing_the_state_of_batch_4)
        with pytest.raises(Crash):
            run_ppo(ppo_args(tiny, out))
    assert (out / ".tmp-checkpoint-4").is_dir() and not (out / "checkpoint-4").exists()
    assert latest_checkpoint(out) == out / "checkpoint-2"
    assert not (out / "actor").exists()
    run_ppo(ppo_args(tiny, out))
    assert_same_ppo_run(out, ppo_reference)
    assert not list(out.glob(".tmp-checkpoint-*"))  # the next save cleared what the crash left


@pytest.fixture
def sigint_is_ctrl_c():
    """A test session started in the background inherits SIGINT ignored; these tests need what a
    terminal's Ctrl-C gives a Python program (KeyboardInterrupt)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def interrupt_ppo_at(monkeypatch, method: str, call: int, before: bool):
    """Send this process SIGINT (a real Ctrl-C) in the `call`-th PPOTrainer.`method` call
    (tests using it take the sigint_is_ctrl_c fixture)."""
    real, calls = getattr(PPOTrainer, method), []

    def patched(self, *args, **kw):
        calls.append(1)
        if before and len(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
        out = real(self, *args, **kw)
        if not before and len(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(PPOTrainer, method, patched)


@pytest.mark.usefixtures("sigint_is_ctrl_c")
def test_ppo_ctrl_c_saves_a_checkpoint_and_the_rerun_resumes_from_it(tiny, ppo_reference, tmp_path, monkeypatch):
    out = tmp_path / "ppo"
    argv = ppo_args(tiny, out, "--save_steps", "0")  # no periodic checkpoint: Ctrl-C's own
    with monkeypatch.context() as patch:
        interrupt_ppo_at(patch, "generate_experience", 3, before=True)  # batches 1 and 2 trained
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            run_ppo(argv)
    saved = latest_checkpoint(out)
    state = json.loads((saved / "trainer_state.json").read_text())
    # batch 2 if the run stops at once (as now), batch 3 if it first finishes the batch under way
    assert state["batches_done"] in (2, 3) and saved.name == f"checkpoint-{state['batches_done']}"
    assert state["trainer"]["global_step"] == 2 * state["batches_done"]
    assert not (out / "actor").exists()
    run_ppo(argv)
    assert_same_ppo_run(out, ppo_reference)


@pytest.mark.usefixtures("sigint_is_ctrl_c")
@pytest.mark.parametrize(
    "method, call, before",
    [("generate_experience", 3, False), ("_update", 6, True)],
    ids=["after-generating", "between-mini-batches"],
)
def test_ppo_ctrl_c_mid_batch_resumes_to_the_uninterrupted_result(
    tiny, ppo_reference, tmp_path, monkeypatch, method, call, before
):
    out = tmp_path / "ppo"
    argv = ppo_args(tiny, out, "--save_steps", "0")
    with monkeypatch.context() as patch:
        interrupt_ppo_at(patch, method, call, before)  # _update call 6: batch 3's second mini-batch
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            run_ppo(argv)
    run_ppo(argv)
    assert_same_ppo_run(out, ppo_reference)


# ------------------------------------------------------------------ 3. bad input through the recipes


def fails(fn, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli(fn)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err[err.index("error: ") :]


@pytest.mark.parametrize("step", ["sft", "rm"])
def test_model_path_that_does_not_exist_claims_no_output_folder(tiny, tmp_path, capsys, step):
    out = tmp_path / "out"
    err = fails(
        lambda: recipe(step)(step_args(tiny, out, "--model_name_or_path", str(tmp_path / "no" / "model"))), capsys
    )
    assert f"model path '{tmp_path / 'no' / 'model'}' does not exist" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # so the corrected command is not refused as "a different run"


def test_bad_rows_and_long_prompts_are_counted_with_their_place_and_training_goes_on(tiny, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    good = [{"prompt": f"question {i}?", "chosen": " yes thank you", "rejected": " no no no"} for i in range(40)]
    long = {
        "prompt": "please explain how a language model generates text " * 2000,
        "chosen": " yes",
        "rejected": " no",
    }  # ~100 kB: far beyond max_length
    bad = [
        {"prompt": "q", "chosen": None, "rejected": "no"},
        {"prompt": "q", "chosen": "   ", "rejected": "no"},
        {"prompt": "q", "chosen": "same", "rejected": "same"},
        {"prompt": 42, "chosen": "a", "rejected": "b"},
        {"chosen": "a", "rejected": "b"},
    ]
    lines = [json.dumps(r) for r in good[:20] + bad + [long] * 3 + good[20:]]
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    (data / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in good[:4]) + "\n")
    out = tmp_path / "out"
    recipe("sft")(
        [
            "--model_name_or_path",
            str(tiny["llama"]),
            "--datasets",
            str(data),
            "--data_split",
            "1,0,0",
            "--output_dir",
            str(out),
            "--use_cpu",
            "true",
            "--report_to",
            "none",
            "--max_steps",
            "2",
            "--max_length",
            "64",
            "--per_device_train_batch_size",
            "4",
            "--save_strategy",
            "no",
            "--logging_steps",
            "1",
        ]
    )
    err = capsys.readouterr().err
    where = f"{data / 'train.jsonl'}"
    for reason, line in [
        ("field 'chosen' is null", 21),
        ("field 'chosen' is empty", 22),
        ("chosen and rejected are identical", 23),
        ("field 'prompt' is int, not text", 24),
        ("missing field 'prompt'", 25),
    ]:
        assert f"1 x {reason} (first at {where}:{line})" in err, reason
    assert "kept 43, dropped 5" in err
    assert "train prompts: dropped 3 of 43 rows whose prompt has more than 63 tokens (max_length 64)" in err
    assert (out / "config.json").exists() and len(losses(out)) == 2


# ------------------------------------------------------------------ 4. security


def test_pickled_weights_that_could_run_code_are_refused(tiny, tmp_path):
    from rlhf_lite.models import ModelSettings, load_causal_lm

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    state = weights(tiny["llama"])
    plain = tmp_path / "plain"
    shutil.copytree(tiny["llama"], plain)
    (plain / "model.safetensors").unlink()
    torch.save(state, plain / "pytorch_model.bin")
    assert load_causal_lm(ModelSettings(str(plain))) is not None  # tensors only: weights_only=True reads it
    evil = tmp_path / "evil"
    shutil.copytree(plain, evil)
    torch.save({**state, "extra": Payload()}, evil / "pytorch_model.bin")
    with pytest.raises(ModelError, match="holds more than tensors, so it was not loaded"):
        load_causal_lm(ModelSettings(str(evil)))
    assert not marker.exists()


def test_remote_code_is_off_unless_asked_for(tmp_path):
    from trl import RewardConfig, SFTConfig

    from rlhf_lite.args import ModelArguments, parse

    argv = ["--output_dir", str(tmp_path / "o")]
    for config in (SFTConfig, RewardConfig):
        assert not next(
            p for p in parse([ModelArguments, config], "x", argv) if hasattr(p, "output_dir")
        ).trust_remote_code
    assert PPOArguments().trust_remote_code is False
    assert parse([PPOArguments], "ppo", argv)[0].trust_remote_code is False
    # ... and no code of the project turns it on by itself
    for path in [*ROOT.glob("rlhf_lite/**/*.py"), *ROOT.glob("recipes/*.py"), *ROOT.glob("evaluate/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert not (isinstance(node.value, ast.Constant) and node.value.value is True), path
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load":
                assert getattr(node.func.value, "id", None) not in ("torch", "pickle"), (
                    f"{path}:{node.lineno} unpickles"
                )


def test_data_cache_is_plain_json_and_a_tampered_entry_is_rebuilt(tmp_path):
    from rlhf_lite.data import load_rows

    f = tmp_path / "train.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"}) for i in range(10)))
    cache = tmp_path / "cache"
    rows, _ = load_rows(str(f), "train", cache_dir=str(cache))
    files = [p for p in (cache / "data").rglob("*") if p.is_file()]
    assert files and {p.suffix for p in files} <= {".json", ".jsonl"}
    for p in files:
        for line in p.read_text(encoding="utf-8").splitlines():
            json.loads(line)
    entry = next(p for p in files if p.name == "rows.jsonl")
    entry.write_bytes(pickle.dumps(rows))  # a pickle where the rows were: never unpickled, rebuilt
    assert load_rows(str(f), "train", cache_dir=str(cache))[0] == rows


def test_exported_folders_hold_no_pickles(tiny, uninterrupted, ppo_reference):
    for folder in (uninterrupted("sft"), ppo_reference / "actor", ppo_reference / "critic"):
        assert not [p.name for p in folder.iterdir() if p.is_file() and p.suffix in (".bin", ".pkl", ".pt", ".pth")]


# ------------------------------------------------------------------ 5. a final folder never looks complete early


def test_an_export_that_dies_midway_leaves_no_config_json(tiny, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    import rlhf_lite.models as models

    tok = models.load_tokenizer(str(tiny["llama"]))
    model = AutoModelForCausalLM.from_pretrained(tiny["llama"])
    out = tmp_path / "published"
    models.save_model(model, tok, out)
    assert (out / "config.json").exists()  # a complete folder from an earlier export ...
    real = os.replace

    def dies_on_the_weights(src, dst):
        if Path(dst) == out / "model.safetensors":  # publishing, after config.json was taken away
            raise Crash
        return real(src, dst)

    monkeypatch.setattr(os, "replace", dies_on_the_weights)
    with pytest.raises(Crash):
        models.save_model(model, tok, out)
    assert not (out / "config.json").exists()  # ... no longer claims to be one
