"""Steps 1 and 2 end to end on tiny models: they train, save standard folders and refuse bad input."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from tests.tiny_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--use_cpu",
    "true",
    "--report_to",
    "none",
    "--save_strategy",
    "no",
    "--logging_steps",
    "1",
    "--seed",
    "0",
    "--disable_tqdm",
    "true",
    "--per_device_train_batch_size",
    "4",
]


def recipe(name):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def separable_pairs(folder: Path, n_train=60, n_eval=12) -> Path:
    """A preference set any model separates: the good answer is always the same polite word."""
    folder.mkdir(parents=True, exist_ok=True)
    make = lambda i: {
        "prompt": f"\n\nHuman: question {i}?\n\nAssistant:",  # noqa: E731
        "chosen": " yes thank you",
        "rejected": " no no no",
    }
    (folder / "train.json").write_text(json.dumps([make(i) for i in range(n_train)]))
    (folder / "eval.json").write_text(json.dumps([make(1000 + i) for i in range(n_eval)]))
    return folder


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "llama": make_tiny_model(root / "llama", "llama"),
        "opt": make_tiny_model(root / "opt", "opt"),
        "data": separable_pairs(root / "pairs"),
    }


def args(tiny, out, *extra, family="llama"):
    return [
        "--model_name_or_path",
        str(tiny[family]),
        "--datasets",
        str(tiny["data"]),
        "--output_dir",
        str(out),
        "--data_split",
        "1,1,1",
        *FAST,
        *extra,
    ]


def test_sft_trains_and_saves_a_standard_folder(tiny, tmp_path):
    out = tmp_path / "sft"
    recipe("sft")(args(tiny, out, "--max_steps", "3", "--max_length", "64"))
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert (out / "model.safetensors").exists() and (out / "generation_config.json").exists()
    assert tok.pad_token_id != tok.eos_token_id
    assert model(**tok(["hello"], return_tensors="pt")).logits.shape[-1] >= len(tok)
    logged = metrics(out)
    assert [m["step"] for m in logged if "loss" in m] == [1, 2, 3]
    assert json.loads((out / "run_config.json").read_text())["model_name_or_path"] == str(tiny["llama"])
    # The exported tokenizer formats a conversation as training did (Llama's <s> in front).
    chat = [{"role": "user", "content": "hello"}]
    prompt = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert prompt == "<s>\n\nHuman: hello\n\nAssistant:"


def test_a_model_trained_in_its_own_chat_template_keeps_it(tiny, tmp_path):
    own = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    base = shutil.copytree(tiny["llama"], tmp_path / "base")
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = own
    tok.save_pretrained(base)
    out = tmp_path / "sft"
    tiny_own = {**tiny, "llama": base}
    recipe("sft")(args(tiny_own, out, "--max_steps", "1", "--max_length", "64", "--chat_template", "true"))
    assert AutoTokenizer.from_pretrained(out).chat_template == own


@pytest.mark.parametrize("step", ["sft", "rm"])
def test_trainable_layers_leaves_the_lower_blocks_as_they_were(tiny, tmp_path, step):
    out = tmp_path / step
    recipe(step)(args(tiny, out, "--max_steps", "2", "--max_length", "64", "--trainable_layers", "1"))
    before = AutoModelForCausalLM.from_pretrained(tiny["llama"]).state_dict()
    auto = AutoModelForSequenceClassification if step == "rm" else AutoModelForCausalLM
    after = auto.from_pretrained(out).state_dict()
    same = lambda prefix: all(
        torch.equal(before[k], after[k])
        for k in before  # noqa: E731
        if k.startswith(prefix) and k in after
    )
    assert same("model.layers.0.") and same("model.embed_tokens.")
    assert not same("model.layers.1.")


def test_sft_loss_decreases_on_a_tiny_overfit_set(tiny, tmp_path):
    out = tmp_path / "overfit"
    recipe("sft")(
        args(
            tiny,
            out,
            "--max_steps",
            "25",
            "--learning_rate",
            "3e-3",
            "--lr_scheduler_type",
            "constant",
            "--max_length",
            "64",
        )
    )
    losses = [m["loss"] for m in metrics(out) if "loss" in m]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_sft_loss_on_full_text_changes_what_is_learned(tiny, tmp_path):
    first = {}
    for flag in ("false", "true"):
        out = tmp_path / flag
        recipe("sft")(
            args(
                tiny,
                out,
                "--max_steps",
                "1",
                "--max_length",
                "64",
                "--loss_on_full_text",
                flag,
                "--activation_checkpointing",
                "true",
                "--dropout",
                "0.0",
            )
        )
        first[flag] = next(m["loss"] for m in metrics(out) if "loss" in m)
        assert json.loads((out / "run_config.json").read_text())["loss_on_full_text"] == (flag == "true")
    assert first["false"] != first["true"]


def test_sft_lora_merged_by_default_or_adapter_only(tiny, tmp_path):
    lora = [
        "--use_lora",
        "true",
        "--lora_r",
        "4",
        "--max_steps",
        "2",
        "--lora_learning_rate",
        "1e-3",
        "--max_length",
        "64",
    ]
    merged = tmp_path / "merged"
    recipe("sft")(args(tiny, merged, *lora, family="opt"))
    assert not (merged / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny["opt"])
    trained = AutoModelForCausalLM.from_pretrained(merged)
    name = "model.decoder.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(base.state_dict()[name], trained.state_dict()[name])
    adapter = tmp_path / "adapter"
    recipe("sft")(args(tiny, adapter, *lora, "--merge_lora", "false", family="opt"))
    assert (adapter / "adapter_config.json").exists() and not (adapter / "model.safetensors").exists()


@pytest.mark.parametrize("step", ["sft", "rm"])
def test_8bit_lora_trains_and_merges(tiny, tmp_path, step):
    out = tmp_path / step
    recipe(step)(
        args(
            tiny,
            out,
            "--load_in_8bit",
            "true",
            "--use_lora",
            "true",
            "--max_steps",
            "2",
            "--max_length",
            "64",
            family="opt",
        )
    )
    auto = AutoModelForSequenceClassification if step == "rm" else AutoModelForCausalLM
    model = auto.from_pretrained(out)
    assert not hasattr(model.config, "quantization_config")  # merged into a full-precision copy
    assert len([m for m in metrics(out) if "loss" in m]) == 2


def test_dataset_weights_change_the_mixture(tiny, tmp_path):
    steps = {}
    for weight in ("1.0", "0.5"):
        out = tmp_path / weight
        recipe("sft")(args(tiny, out, "--num_train_epochs", "1", "--max_length", "64", "--dataset_weights", weight))
        steps[weight] = max(m["step"] for m in metrics(out))
    # 20 rows (share 0 of "1,1,1" of 60) in batches of 4, then half of them
    assert steps == {"1.0": 5, "0.5": 3}


def test_rm_learns_a_separable_preference(tiny, tmp_path):
    out = tmp_path / "rm"
    recipe("rm")(
        args(
            tiny,
            out,
            "--num_train_epochs",
            "4",
            "--learning_rate",
            "3e-3",
            "--max_length",
            "64",
            "--eval_strategy",
            "epoch",
        )
    )
    final = [m for m in metrics(out) if "eval_accuracy" in m][-1]
    assert final["eval_accuracy"] == 1.0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None


def test_rm_divergence_loss_trains(tiny, tmp_path):
    out = tmp_path / "rm_div"
    recipe("rm")(
        args(
            tiny,
            out,
            "--reward_loss",
            "divergence",
            "--max_steps",
            "12",
            "--learning_rate",
            "3e-3",
            "--max_length",
            "64",
        )
    )
    losses = [m["loss"] for m in metrics(out) if "loss" in m]
    assert len(losses) == 12 and losses[-1] < losses[0]


@pytest.mark.parametrize("step", ["sft", "rm"])
def test_same_seed_same_run(tiny, tmp_path, step):
    # The reward head and LoRA adapters are created before the Trainer seeds anything.
    extra = ["--max_steps", "3", "--learning_rate", "1e-3", "--max_length", "64", "--use_lora", "true"]
    runs = [
        recipe(step)(args(tiny, tmp_path / f"{step}{i}", *extra, family="opt")) or metrics(tmp_path / f"{step}{i}")
        for i in range(2)
    ]
    losses = [[m["loss"] for m in run if "loss" in m] for run in runs]
    assert len(losses[0]) == 3 and losses[0] == losses[1]


def test_rm_group_by_length_batches_pairs_of_similar_length(tiny, tmp_path):
    from datasets import Dataset
    from trl import RewardConfig

    from rlhf_lite.rm import PairwiseRewardTrainer

    tok = AutoTokenizer.from_pretrained(tiny["opt"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny["opt"], num_labels=1)
    gen = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(5, 90, (n,), generator=gen).tolist()  # noqa: E731
    lengths = torch.randint(2, 60, (96,), generator=gen).tolist()  # the two answers of a pair are about as long
    data = Dataset.from_list([{"chosen_ids": ids(n), "rejected_ids": ids(n + 1)} for n in lengths])

    def padding(strategy):
        config = RewardConfig(
            output_dir=str(tmp_path / strategy),
            per_device_train_batch_size=4,
            use_cpu=True,
            bf16=False,
            per_device_eval_batch_size=4,
            train_sampling_strategy=strategy,
            report_to="none",
            activation_checkpointing=False,
        )
        trainer = PairwiseRewardTrainer(
            model=model, args=config, train_dataset=data, eval_dataset=data, processing_class=tok
        )
        sizes = {}
        for split, loader in (("train", trainer.get_train_dataloader()), ("eval", trainer.get_eval_dataloader())):
            batches = list(loader)
            assert sum(len(b["input_ids"]) for b in batches) == 2 * len(data)  # every pair, once
            sizes[split] = sum(b["attention_mask"].numel() - b["attention_mask"].sum().item() for b in batches)
        return sizes

    grouped, plain = padding("group_by_length"), padding("random")
    assert grouped["train"] < plain["train"] / 2 and grouped["eval"] < plain["eval"] / 2


# ------------------------------------------------------------------ bad input, before any model


def run_cli(name, argv, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / f"{name}.py"), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return proc.returncode, proc.stderr


def test_unknown_config_key_is_refused(tiny, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("learning_rate: 1.0e-5\nlerning_rate: 2\n")
    code, err = run_cli("sft", ["--config", str(cfg), *args(tiny, tmp_path / "o")], tmp_path)
    assert code == 2 and "lerning_rate" in err and "Traceback" not in err


def test_wrong_type_is_refused(tiny, tmp_path):
    code, err = run_cli("sft", [*args(tiny, tmp_path / "o"), "--learning_rate", "fast"], tmp_path)
    assert code == 2 and "learning_rate" in err


def test_sft_only_data_is_refused_by_the_reward_step(tiny, tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q{i}", "chosen": "a"}) for i in range(30)))
    code, err = run_cli(
        "rm",
        [
            "--model_name_or_path",
            "/nonexistent/model",
            "--datasets",
            str(data),
            "--output_dir",
            str(tmp_path / "o"),
            *FAST,
        ],
        tmp_path,
    )
    # The data error comes first: no model (which does not even exist) was loaded.
    assert code == 2 and "no rejected answers" in err and "Traceback" not in err


def test_max_length_shorter_than_every_prompt(tiny, tmp_path):
    code, err = run_cli("sft", [*args(tiny, tmp_path / "o"), "--max_length", "2"], tmp_path)
    assert code == 2 and "shorter than every" in err


def test_output_dir_of_a_different_run_is_refused(tiny, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run_config.json").write_text(json.dumps({"learning_rate": 1.0}))
    code, err = run_cli("sft", [*args(tiny, out), "--model_name_or_path", "/nonexistent"], tmp_path)
    assert code == 2 and "holds a different run" in err and "learning_rate" in err


@pytest.mark.slow
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
@pytest.mark.parametrize("step", ["sft", "rm"])
def test_recipes_under_accelerate_launch_with_deepspeed(tiny, tmp_path, zero, step):
    out = tmp_path / step
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(ROOT / "accelerate_configs" / f"{zero}.yaml"),
            str(ROOT / "recipes" / f"{step}.py"),
            *args(tiny, out, "--max_steps", "2", "--max_length", "64"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    auto = AutoModelForSequenceClassification if step == "rm" else AutoModelForCausalLM
    assert auto.from_pretrained(out) is not None
