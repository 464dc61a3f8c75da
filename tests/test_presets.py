"""Every preset's YAML parses into its recipe's arguments (no unknown keys, right types), and
every accelerate config points at a DeepSpeed config that exists."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from trl import RewardConfig, SFTConfig

from rlhf_lite.args import ModelArguments, parse
from rlhf_lite.ppo import PPOArguments

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.name for p in (ROOT / "recipes" / "configs").iterdir() if p.is_dir())


def recipe_class(step, name):
    spec = importlib.util.spec_from_file_location(f"recipe_{step}", ROOT / "recipes" / f"{step}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_the_required_presets_exist():
    assert {"demo", "opt-1.3b-4090", "opt-13b-node", "bloom-1b1-zh"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_parses(preset):
    config = lambda step: str(ROOT / "recipes" / "configs" / preset / f"{step}.yaml")  # noqa: E731
    cpu = ["--bf16", "false"]  # the GPU presets ask for bf16, which transformers refuses on this CPU
    sft = parse([recipe_class("sft", "SFTArguments"), ModelArguments, SFTConfig], "sft", ["--config", config("sft"), *cpu])
    rm = parse([recipe_class("rm", "RMArguments"), ModelArguments, RewardConfig], "rm", ["--config", config("rm"), *cpu])
    (ppo,) = parse([PPOArguments], "ppo", ["--config", config("ppo")])
    assert sft[2].output_dir == f"outputs/{preset}/sft" and rm[2].output_dir == f"outputs/{preset}/rm"
    assert ppo.output_dir == f"outputs/{preset}/ppo"
    assert sft[0].datasets and rm[0].datasets and ppo.datasets


@pytest.mark.parametrize("path", sorted((ROOT / "accelerate_configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_accelerate_configs_point_at_existing_deepspeed_configs(path):
    config = yaml.safe_load(path.read_text())
    ds = (config.get("deepspeed_config") or {}).get("deepspeed_config_file")
    if config["distributed_type"] == "DEEPSPEED":
        assert ds and (ROOT / ds).is_file(), ds
        json.loads((ROOT / ds).read_text())
