"""Every preset's YAML parses into its recipe's arguments (no unknown keys, right types), and
every accelerate config points at a DeepSpeed config that exists."""

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from trl import RewardConfig, SFTConfig

from rlhf_lite.args import ModelArguments, RMArguments, SFTArguments, parse
from rlhf_lite.data import load_step_rows
from rlhf_lite.ppo import PPOArguments
from rlhf_lite.training import step_rows

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.name for p in (ROOT / "recipes" / "configs").iterdir() if p.is_dir())


def test_the_required_presets_exist():
    assert {"demo", "opt-1.3b-4090", "opt-13b-node", "bloom-1b1-zh"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_parses(preset):
    config = lambda step: str(ROOT / "recipes" / "configs" / preset / f"{step}.yaml")  # noqa: E731
    cpu = ["--bf16", "false"]  # the GPU presets ask for bf16, which transformers refuses on this CPU
    sft = parse([SFTArguments, ModelArguments, SFTConfig], "sft", ["--config", config("sft"), *cpu])
    rm = parse([RMArguments, ModelArguments, RewardConfig], "rm", ["--config", config("rm"), *cpu])
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


@pytest.mark.parametrize("preset", [p for p in PRESETS if (ROOT / "recipes" / "configs" / p / "judge.yaml").is_file()])
def test_judge_trains_on_pairs_the_reward_model_never_saw_and_on_step_3s_prompts(preset):
    """A judge runs with its own seed (another score head); its rows must still be step 3's share."""
    config = lambda step: ["--config", str(ROOT / "recipes" / "configs" / preset / f"{step}.yaml")]  # noqa: E731
    pairs, seeds = {}, set()
    for step in ("rm", "judge"):
        script, _, training = parse([RMArguments, ModelArguments, RewardConfig], "rm", config(step))
        pairs[step] = {(r["prompt"], r["chosen"]) for r in step_rows(script, script.data_share, need_pairs=True)[0]}
        seeds.add(training.seed)
    (ppo,) = parse([PPOArguments], "ppo", config("ppo"))
    every = Counter((r["prompt"], r["chosen"]) for r in load_step_rows(ppo.specs(), "train", data_dir=ppo.data_dir)[0])
    repeated = {pair for pair, n in every.items() if n > 1}  # a sample may hold a pair twice
    assert len(seeds) == 2  # the judge does run with another seed ...
    assert pairs["judge"] and not (pairs["judge"] & pairs["rm"]) - repeated  # ... on other pairs ...
    assert {prompt for prompt, _ in pairs["judge"]} == {r["prompt"] for r in step_rows(ppo, 2, need_pairs=False)[0]}
