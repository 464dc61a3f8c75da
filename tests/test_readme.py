"""The README's commands and code, as written: every command names targets, scripts, modules,
presets and configs that exist and flags its program accepts; the ones a CPU without the hub runs
in seconds run here (the training commands run in test_recipes / test_ppo / test_pipeline), and
so do the Python API loop (on tiny models) and the dataset plugin example."""

import importlib.util
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHARED = ROOT.parent / "shared" / "datasets"
RECIPE_STEPS = ("sft", "rm", "ppo", "dpo", "grpo", "rloo")
pytestmark = pytest.mark.usefixtures("one_thread")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list[list[str]]:
    """Every command of the README's bash blocks, continuation lines joined, comments dropped."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(words)
    return out


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    rules = re.findall(r"^([a-z][\w -]*):", makefile, flags=re.M)  # a rule may name several targets
    return {target for rule in rules for target in rule.split()}


def recipe_argv(words: list[str]) -> list[tuple[str, list[str]]]:
    """(step, recipe argv) of the recipe runs a command starts: `make sft rm ...`, `python
    recipes/x.py ...` or `accelerate launch ... recipes/x.py ...`."""
    if words[0] == "make":
        settings = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        preset = settings.get("PRESET", "demo")
        extra = shlex.split(settings.get("ARGS", ""))
        return [
            (step, ["--config", f"recipes/configs/{preset}/{step}.yaml", *extra])
            for step in words[1:]
            if step in RECIPE_STEPS
        ]
    for i, word in enumerate(words):
        if word.startswith("recipes/") and word.endswith(".py"):
            return [(Path(word).stem, words[i + 1 :])]
    return []


def test_every_command_names_what_exists():
    targets = make_targets()
    seen = set()
    for words in commands():
        seen.add(words[0])
        if words[0] == "make":
            for word in words[1:]:
                if "=" in word:
                    key, value = word.split("=", 1)
                    if key == "PRESET":
                        assert (ROOT / "recipes" / "configs" / value).is_dir(), word
                    if key == "ACCELERATE_CONFIG":
                        assert (ROOT / "accelerate_configs" / f"{value}.yaml").is_file(), word
                else:
                    assert word in targets, f"make {word}: no such target"
            continue
        if words[0] == "pip":  # the install without the lock: real extras, and pins the lock agrees with
            assert words[1] == "install", words
            for word in words[2:]:
                if word.startswith(".["):
                    import tomllib

                    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
                    assert set(word[2:-1].split(",")) <= set(extras), word
                if "==" in word:
                    assert word in (ROOT / "requirements" / "constraints.txt").read_text().splitlines(), word
            continue
        assert words[0] in ("python", "accelerate"), words
        for i, word in enumerate(words):
            if word == "-m":
                assert importlib.util.find_spec(words[i + 1]) is not None, words[i + 1]
            if word.endswith((".py", ".yaml")) and "/" in word and not word.startswith("../"):
                assert (ROOT / word).is_file(), word
    assert seen == {"make", "python", "accelerate", "pip"}


@pytest.mark.parametrize("step", RECIPE_STEPS)
def test_recipe_commands_parse(step):
    """The flags of every README command that runs this step are fields its config accepts
    (demo preset and explicit configs; the GPU presets' bf16 cannot be parsed on a CPU)."""
    from trl import RewardConfig, SFTConfig

    from rlhf_lite import dpo, grpo, rloo
    from rlhf_lite.args import ModelArguments, RMArguments, SFTArguments, parse
    from rlhf_lite.ppo import PPOArguments

    parsers = {
        "sft": lambda argv: parse([SFTArguments, ModelArguments, SFTConfig], "sft", argv),
        "rm": lambda argv: parse([RMArguments, ModelArguments, RewardConfig], "rm", argv),
        "ppo": lambda argv: parse([PPOArguments], "ppo", argv),
        **{m.__name__.split(".")[-1]: m.arguments for m in (dpo, grpo, rloo)},
    }  # what each recipe parses its command line into
    runs = [argv for words in commands() for s, argv in recipe_argv(words) if s == step]
    assert runs, f"the README never runs step {step}"
    for argv in runs:
        if "recipes/configs/demo/" not in " ".join(argv):
            continue
        parsers[step]([*argv, "--output_dir", "unused"])


def run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module", ["rlhf_lite.data", "rlhf_lite.plan"])
def test_quick_commands_run(module):
    ran = 0
    for words in commands():
        if words[:3] != ["python", "-m", module]:
            continue
        if any(w.startswith("../shared") for w in words) and not SHARED.is_dir():
            continue
        if "--plugin" in words:  # needs the example's files: test_plugin_example
            continue
        proc = run(words[1:])
        assert proc.returncode == 0, (words, proc.stderr[-2000:])
        ran += 1
    assert ran


def test_api_loop_runs_on_tiny_models(tmp_path, monkeypatch):
    from tests.tiny_models import make_tiny_model

    code = next(b for b in blocks("python") if "RLHFEngine(" in b)
    sft, rm = make_tiny_model(tmp_path, "llama", "causal"), make_tiny_model(tmp_path, "llama", "reward", seed=1)
    code = code.replace('"outputs/demo/sft"', repr(str(sft))).replace('"outputs/demo/rm"', repr(str(rm)))
    # Two batches of the loop: the rest of it is the same code again.
    code = code.replace("prompts.batches()", "itertools.islice(prompts.batches(), 2)")
    monkeypatch.chdir(tmp_path)
    scope = {"itertools": itertools}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["step"] == 1 and isinstance(scope["actor_loss"], float)
    assert {"reward/score", "kl/sequence"} <= set(scope["trainer"].stats)


def test_plugin_example(tmp_path):
    plugin = next(b for b in blocks("python") if "# my_adapters.py" in b)
    (tmp_path / "my_adapters.py").write_text(plugin, encoding="utf-8")
    rows = [
        {"question": "What is 2 + 2?", "good": "Four.", "bad": "Five."},
        {"question": "Why?", "good": "N/A", "bad": "Because."},
    ]
    data = tmp_path / "data" / "me" / "qa-pairs"
    data.mkdir(parents=True)
    for folder in (data, tmp_path):
        name = "train.jsonl" if folder == data else "my_file.jsonl"
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ran = 0
    for words in commands():
        if "--plugin" in words:
            words = [w if w != "/data" else str(tmp_path / "data") for w in words]
            proc = run(words[1:], cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert '"prompt": "\\n\\nHuman: What is 2 + 2?\\n\\nAssistant:"' in proc.stdout
            assert '" Four."' in proc.stdout and "no good answer" in proc.stderr
            ran += 1
    assert ran == 2
