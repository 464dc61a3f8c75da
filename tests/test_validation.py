"""Every numeric setting of every entry point is range-checked before any data or model is read:
a value outside its range is one line on stderr, exit status 2, no traceback.

The walk is driven by the tables themselves (the recipes' dataclass fields and each command
line's options), so a numeric setting added without a range fails here."""

import importlib
import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest
from trl import RewardConfig, SFTConfig

from rlhf_lite.args import ModelArguments, RMArguments, SFTArguments
from rlhf_lite.errors import cli
from rlhf_lite.ppo import PPOArguments
from rlhf_lite.ranges import RANGES, Range, numeric_fields, range_of

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECIPES = {name: load_script(ROOT / "recipes" / f"{name}.py") for name in ("sft", "rm", "ppo")}
DATACLASSES = {
    "sft": [SFTArguments, ModelArguments, SFTConfig],
    "rm": [RMArguments, ModelArguments, RewardConfig],
    "ppo": [PPOArguments],
}
CLIS = {
    "chat": "rlhf_lite.chat",
    "plan": "rlhf_lite.plan",
    "pipeline": "rlhf_lite.pipeline",
    "data": "rlhf_lite.data.__main__",
    "plot": "rlhf_lite.plot",
    **{name: f"rlhf_lite.eval.{name}" for name in ("perplexity", "prompt_eval", "rm_eval", "ppo_eval")},
}


def fails_in_one_line(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: main(argv))
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err


def text(value) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else repr(value)


def outside(cls, field) -> list:
    """Values outside the field's range that its type can hold (no NaN for an int field)."""
    integer = re.search(r"\bint\b", str(field.type)) and not re.search(r"\bfloat\b", str(field.type))
    return [v for v in range_of(cls, field.name).outside() if not (integer and isinstance(v, float))]


RECIPE_CASES = [
    (step, f.name, value)
    for step, classes in DATACLASSES.items()
    for cls in classes
    for f in numeric_fields(cls)
    for value in outside(cls, f)
]


def test_every_numeric_field_and_option_has_a_range():
    missing = [
        f"{cls.__name__}.{f.name}"
        for classes in DATACLASSES.values()
        for cls in classes
        for f in numeric_fields(cls)
        if range_of(cls, f.name) is None
    ]
    assert not missing, f"numeric settings without a range in rlhf_lite/ranges.py: {missing}"
    numeric_options = [
        (name, a.dest)
        for name, module in CLIS.items()
        for _, a in actions(parser_of(module))
        if a.type in (int, float) and not a.choices
    ]
    assert not numeric_options, f"numeric options without a range (use ranges.option): {numeric_options}"


@pytest.mark.parametrize("step, field, value", RECIPE_CASES, ids=[f"{s}-{f}-{text(v)}" for s, f, v in RECIPE_CASES])
def test_recipe_fields_out_of_range(step, field, value, tmp_path, capsys):
    argv = [
        "--config",
        str(ROOT / "recipes" / "configs" / "demo" / f"{step}.yaml"),
        "--output_dir",
        str(tmp_path / "out"),
        f"--{field}",
        text(value),
    ]
    if step == "ppo":  # step 3 looks for steps 1 and 2's models only after its arguments
        argv += ["--actor_model_name_or_path", "/nonexistent", "--critic_model_name_or_path", "/nonexistent"]
    err = fails_in_one_line(RECIPES[step].main, argv, capsys)
    assert field in err  # ours say "must be ...", transformers' own checks are one line too
    assert not (tmp_path / "out").exists()  # refused before the output folder was claimed


def actions(parser, prefix=()):
    """(argv prefix, action) of every option of `parser` and of its sub-commands (whose one
    positional argument, a dataset name, is given `demo`)."""
    for a in parser._actions:
        if a.choices and isinstance(a.choices, dict):  # sub-commands
            for name, sub in a.choices.items():
                yield from actions(sub, (*prefix, name, "demo"))
        elif a.option_strings:
            yield prefix, a


def parser_of(module):
    module = load_script(module) if isinstance(module, Path) else importlib.import_module(module)
    return module.parser()


def main_of(module):
    return (load_script(module) if isinstance(module, Path) else importlib.import_module(module)).main


CLI_CASES = [
    (name, [*prefix, a.option_strings[-1]], value)
    for name, module in CLIS.items()
    for prefix, a in actions(parser_of(module))
    if isinstance(getattr(a.type, "allowed", None), Range)
    for value in a.type.allowed.outside()
]


@pytest.mark.parametrize(
    "name, words, value", CLI_CASES, ids=[f"{n}-{' '.join(w)}={text(v)}" for n, w, v in CLI_CASES]
)
def test_command_line_options_out_of_range(name, words, value, capsys):
    argv, flag = [*words, text(value)], words[-1]
    err = fails_in_one_line(main_of(CLIS[name]), argv, capsys)
    assert flag in err and "must be" in err


def test_ranges_read_as_a_person_would_write_them():
    assert str(RANGES["learning_rate"]) == "a number in [0, 1]"
    assert str(RANGES["max_steps"]) == "-1 or an integer >= 1"
    assert str(RANGES["per_device_train_batch_size"]) == "an integer >= 1"
    assert 1e-4 in RANGES["learning_rate"] and 1e4 not in RANGES["learning_rate"] and True not in RANGES["max_steps"]
    assert -1 in RANGES["max_steps"] and 0 not in RANGES["max_steps"] and 2.5 not in RANGES["max_steps"]


def test_in_range_values_pass(tmp_path):
    for step, classes in DATACLASSES.items():
        argv = ["--config", str(ROOT / "recipes" / "configs" / "demo" / f"{step}.yaml"), "--output_dir", str(tmp_path)]
        from rlhf_lite.args import parse

        assert len(parse(classes, step, argv)) == len(classes)


def test_python_api_checks_ranges_too():
    from rlhf_lite.errors import ConfigError

    with pytest.raises(ConfigError, match="cliprange must be a number in \\(0, 1\\), got 1.5"):
        PPOArguments(cliprange=1.5)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


# --------------------------------------------------------------------------- files of the wrong kind or broken


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.tiny_models import make_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {"causal": make_tiny_model(root, "llama"), "reward": make_tiny_model(root, "llama", "reward")}


def broken_copy(src: Path, dst: Path, name: str, keep: int) -> Path:
    """A copy of model folder `src` whose file `name` is cut to its first `keep` bytes."""
    import shutil

    shutil.copytree(src, dst)
    data = (dst / name).read_bytes()
    (dst / name).write_bytes(data[:keep])
    return dst


def test_config_file_missing_or_not_yaml(tmp_path, capsys):
    err = fails_in_one_line(RECIPES["sft"].main, ["--config", str(tmp_path / "nope.yaml")], capsys)
    assert "nope.yaml" in err and "does not exist" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1e-4\n  max_length: [\n")
    err = fails_in_one_line(RECIPES["sft"].main, ["--config", str(bad)], capsys)
    assert "bad.yaml" in err and "line" in err


def test_models_of_the_wrong_kind_are_refused_by_every_entry_point(tiny, capsys):
    chat = importlib.import_module("rlhf_lite.chat").main
    err = fails_in_one_line(chat, ["--path", str(tiny["reward"])], capsys)
    assert "is a reward model" in err and str(tiny["reward"]) in err
    for name, argv in (
        ("perplexity", ["--model", str(tiny["reward"]), "--data", "demo"]),
        ("prompt_eval", ["--baseline", str(tiny["causal"]), "--finetuned", str(tiny["reward"])]),
    ):
        assert "is a reward model" in fails_in_one_line(main_of(CLIS[name]), argv, capsys)
    err = fails_in_one_line(main_of(CLIS["rm_eval"]), ["--model", str(tiny["causal"]), "--data", "demo"], capsys)
    assert "is not a reward model but a LlamaForCausalLM" in err


@pytest.mark.parametrize(
    "name, keep", [("model.safetensors", 1000), ("model.safetensors", 4), ("tokenizer.json", 100), ("config.json", 20)]
)
def test_truncated_model_files_are_named(tiny, tmp_path, capsys, name, keep):
    folder = broken_copy(tiny["causal"], tmp_path / "broken", name, keep)
    chat = importlib.import_module("rlhf_lite.chat").main
    err = fails_in_one_line(chat, ["--path", str(folder)], capsys)
    assert str(folder) in err
