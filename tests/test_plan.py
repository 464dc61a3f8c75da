"""The memory planner (rlhf_lite.plan): exact parameter counts from the real configs, the presets'
verdicts, ZeRO partitioning, the JSON output, the CLI's one-line errors, and its per-block
activation formula against what autograd really saves. Nothing here reads weights."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlhf_lite import plan as P
from rlhf_lite.errors import ConfigError
from rlhf_lite.models import LoraSettings, ModelSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def opt_4090():
    return P.load_preset("opt-1.3b-4090")


def gpu(**kw) -> P.Hardware:
    return P.Hardware(**({"device": "cuda", "mem_bytes": 24 * P.GB} | kw))


# ------------------------------------------------------------------ architectures and counts


@pytest.mark.parametrize(
    "name, published",
    [
        ("facebook/opt-1.3b", 1.316e9),
        ("facebook/opt-350m", 331e6),
        ("bigscience/bloom-560m", 559e6),
        ("facebook/opt-125m", 125e6),
        ("facebook/opt-13b", 12.85e9),
        ("embedded:smollm2-135m", 134.5e6),
    ],
)
def test_parameter_counts_match_the_published_sizes(name, published):
    count = P.count_model(P.ModelSpec(ModelSettings(name, "bf16")))
    assert abs(count.params - published) / published < 0.01, count.params
    assert count.weight_bytes == 2 * count.params and count.trainable == count.params


def test_known_architectures_build_real_configs():
    from transformers import BloomConfig, LlamaConfig, OPTConfig

    opt350 = P.architecture("facebook/opt-350m")
    assert isinstance(opt350, OPTConfig) and opt350.word_embed_proj_dim == 512
    assert opt350.do_layer_norm_before is False and opt350.vocab_size == 50272
    assert isinstance(P.architecture("bigscience/bloom-1b1"), BloomConfig)
    smol = P.architecture("embedded:smollm2-135m")
    assert isinstance(smol, LlamaConfig) and smol.num_key_value_heads == 3 and smol.tie_word_embeddings


def test_an_unknown_model_without_hub_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="cannot read the architecture"):
        P.architecture("nobody/no-such-model-xyz")
    with pytest.raises(ConfigError, match="no config.json"):
        P.architecture(str(tmp_path))


def test_lora_and_trainable_layers_are_counted_by_the_projects_own_code():
    lora = P.count_model(P.ModelSpec(ModelSettings("facebook/opt-1.3b", "bf16", lora=LoraSettings(128, 128))))
    # q, k, v, out (2048 -> 2048) and fc1/fc2 (2048 <-> 8192) in 24 blocks, fp32 adapters (PEFT).
    assert lora.trainable == 24 * 128 * (4 * (2048 + 2048) + 2 * (2048 + 8192))
    assert lora.trainable_bytes == 4 * lora.trainable and lora.weight_bytes == 2 * 1315758080 + 4 * lora.trainable
    top = P.count_model(P.ModelSpec(ModelSettings("embedded:smollm2-135m", trainable_layers=8)))
    assert top.graph_layers == 8 and 0.2 < top.trainable / top.params < 0.22
    q8 = ModelSettings("facebook/opt-1.3b", "bf16", load_in_8bit=True, lora=LoraSettings(8))
    q8 = P.count_model(P.ModelSpec(q8))
    # int8 block weights + an fp32 scale per output row; the rest (embeddings, norms, biases, LoRA)
    # in fp32, as prepare_model_for_kbit_training leaves them
    linear = 24 * (4 * 2048 * 2048 + 2 * 2048 * 8192)
    rows = 24 * (4 * 2048 + 8192 + 2048)
    assert q8.weight_bytes == linear + 4 * rows + 4 * (q8.params - linear)


# ------------------------------------------------------------------ verdicts of the presets


def test_the_4090_preset_fits_24_gb_in_every_step(opt_4090):
    for step in P.STEPS:
        plan = P.PLANNERS[step](opt_4090.settings[step], gpu())
        assert plan.fits, (step, plan.total / P.GB)
        assert set(plan.components) == set(P.COMPONENTS)
    ppo = P.plan_ppo(opt_4090.settings["ppo"], gpu())
    assert ppo.components["weights"] > 0 and ppo.components["kv_cache"] == 0  # peak while training
    assert ppo.phases["generation"] < ppo.total and ppo.phase == "training"


def test_ppo_without_lora_and_checkpointing_does_not_fit_and_suggests_lora(opt_4090):
    s = opt_4090.settings["ppo"]

    def changed(spec, **settings):
        return dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, **settings))

    full = dataclasses.replace(
        s,
        actor=changed(s.actor, lora=None, gradient_checkpointing=False),
        critic=changed(s.critic, gradient_checkpointing=False),
    )
    plan = P.plan_ppo(full, gpu())
    assert not plan.fits
    assert [m["role"] for m in plan.models] == ["actor", "critic", "reference", "reward"]  # a second 1.3B copy
    suggestions = P.suggest(plan)
    lora = [x for x in suggestions if x["change"].startswith("actor_lora_dim: 128")]
    assert lora and lora[0]["fits"] and lora[0]["saves_gb"] > 5
    assert suggestions == sorted(suggestions, key=lambda x: -x["saves_gb"])


def test_zero3_over_8_gpus_divides_the_weights_by_8(opt_4090):
    rm = opt_4090.settings["rm"]  # full bf16 fine-tuning: DeepSpeed keeps the weights as they are
    one = P.plan_rm(rm, gpu())
    eight = P.plan_rm(rm, gpu(num_gpus=8, zero_stage=3))
    assert eight.components["weights"] * 8 == pytest.approx(one.components["weights"], rel=1e-6)
    ppo1 = P.plan_ppo(opt_4090.settings["ppo"], gpu())
    ppo8 = P.plan_ppo(opt_4090.settings["ppo"], gpu(num_gpus=8, zero_stage=3, mem_bytes=80 * P.GB))
    assert ppo8.phases["training"] < ppo1.phases["training"]
    # ...but generation gathers the whole actor on every GPU (actor_for_generation)
    assert ppo8.phases["generation"] > P.count_model(opt_4090.settings["ppo"].actor).weight_bytes


def test_offload_moves_optimizer_states_to_the_host(opt_4090):
    plan = P.plan_rm(opt_4090.settings["rm"], gpu(zero_stage=2, offload="optimizer"))
    assert plan.components["optimizer"] == 0 and plan.host_bytes >= 12 * 331e6


def test_hardware_defaults_come_from_the_presets_hardware_yaml():
    node = P.load_preset("opt-13b-node", steps=("rm",))
    assert node.hardware == {"zero_stage": 3, "offload": "none", "num_gpus": 8}
    opt = P.load_preset("opt-1.3b-4090", steps=("ppo",))
    assert opt.hardware == {"gpu_mem_gb": 24, "num_gpus": 1}
    assert P.load_preset("demo", steps=("sft",)).hardware == {}  # planned as one 24 GB GPU unless told


def test_the_cpu_plan_is_host_memory_with_the_python_runtime():
    (plan,) = P.plan_preset("demo", steps=("ppo",), device="cpu")
    assert plan.hardware.device == "cpu" and plan.components["runtime"] == P.CPU_RUNTIME_BYTES
    assert [m["role"] for m in plan.models] == ["actor", "critic", "reference", "reward"]
    s = plan.settings  # no LoRA: the reference is a second frozen copy of the actor
    weights = [P.count_model(x).weight_bytes for x in (s.actor, s.actor, s.critic, s.reward)]
    assert plan.components["weights"] == sum(weights)


# ------------------------------------------------------------------ command line


def run_cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "rlhf_lite.plan", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )


def test_json_output(capsys):
    assert P.main(["--preset", "opt-1.3b-4090", "--json", "--steps", "sft,ppo", "--gpu-mem-gb", "24"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"preset", "device", "unit", "steps", "fits"} and out["fits"] is True
    assert set(out["steps"]) == {"sft", "ppo"}
    ppo = out["steps"]["ppo"]
    assert {
        "peak_gb",
        "fits",
        "headroom_gb",
        "budget_gb",
        "peak_phase",
        "components_gb",
        "phases_gb",
        "models",
        "suggestions",
        "zero_stage",
        "num_gpus",
        "offload",
    } <= set(ppo)
    assert set(ppo["components_gb"]) == {
        "weights",
        "gradients",
        "optimizer",
        "activations",
        "kv_cache",
        "logits",
        "runtime",
    }
    assert ppo["peak_gb"] == pytest.approx(sum(ppo["components_gb"].values()), abs=0.01)


def test_table_output_and_overrides(capsys):
    P.main(
        [
            "--preset",
            "opt-1.3b-4090",
            "--steps",
            "ppo",
            "--set",
            "ppo.per_device_generation_batch_size=8",
            "--set",
            "ppo.per_device_training_batch_size=8",
            "--gpu-mem-gb",
            "8",
        ]
    )
    text = capsys.readouterr().out
    for label in ("weights", "gradients", "optimizer states", "activations", "generation KV cache", "logits"):
        assert label in text
    assert "batch 8 gen / 8 train" in text and "DOES NOT FIT" in text and "to make it fit" in text


def test_unknown_preset_is_one_line_and_exit_2():
    proc = run_cli("--preset", "no-such-preset")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: unknown preset 'no-such-preset'")
    assert "opt-1.3b-4090" in proc.stderr


def test_bad_set_is_one_line_and_exit_2():
    proc = run_cli("--preset", "demo", "--set", "nonsense")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "STEP.FIELD=VALUE" in proc.stderr


# ------------------------------------------------------------------ activations vs autograd


def tiny_config(family: str, layers: int):
    from transformers import BloomConfig, LlamaConfig, OPTConfig

    if family == "opt":
        return OPTConfig(
            vocab_size=512,
            hidden_size=64,
            ffn_dim=256,
            num_hidden_layers=layers,
            num_attention_heads=4,
            word_embed_proj_dim=64,
            dropout=0.0,
            max_position_embeddings=128,
        )
    if family == "opt-dropout":  # SFT keeps OPT's residual dropout (0.1)
        return OPTConfig(
            vocab_size=512,
            hidden_size=64,
            ffn_dim=256,
            num_hidden_layers=layers,
            num_attention_heads=4,
            word_embed_proj_dim=64,
            dropout=0.1,
            max_position_embeddings=128,
        )
    if family == "opt-post-ln":  # OPT-350M's layout
        return OPTConfig(
            vocab_size=512,
            hidden_size=64,
            ffn_dim=256,
            num_hidden_layers=layers,
            num_attention_heads=4,
            word_embed_proj_dim=32,
            do_layer_norm_before=False,
            dropout=0.0,
            max_position_embeddings=128,
        )
    if family == "llama":  # grouped-query attention, as SmolLM2
        return LlamaConfig(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=160,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
        )
    return BloomConfig(vocab_size=512, hidden_size=64, n_layer=layers, n_head=4)


def saved_bytes(model, B: int, T: int) -> int:
    """Bytes of the tensors autograd keeps for backward (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(4, 500, (B, T))
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, :3] = 0  # left padding, as PPO has
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, attention_mask=mask, use_cache=False)
    return sum(seen.values())


@pytest.mark.parametrize("family", ["opt", "opt-dropout", "opt-post-ln", "llama", "bloom"])
@pytest.mark.parametrize("dtype, lora", [("fp32", 0), ("bf16", 0), ("fp32", 8), ("bf16", 8)])
def test_block_formula_matches_what_autograd_saves(family, dtype, lora, tmp_path):
    from transformers import AutoModelForCausalLM

    from rlhf_lite.models import DTYPES, LoraSettings, ModelSettings, prepare_for_training

    torch.manual_seed(0)
    B, T = 2, 48
    measured = {}
    for layers in (2, 4):
        path = tmp_path / f"{family}-{layers}"
        tiny_config(family, layers).save_pretrained(path)
        settings = ModelSettings(str(path), dtype, lora=LoraSettings(lora, lora, 0.0) if lora else None)
        model = AutoModelForCausalLM.from_config(tiny_config(family, layers), dtype=DTYPES[dtype])
        model = prepare_for_training(model, settings, reward=False).train()
        measured[layers] = saved_bytes(model, B, T)
    per_block = (measured[4] - measured[2]) / 2 / (B * T)
    count = P.count_model(
        P.ModelSpec(
            ModelSettings(str(tmp_path / f"{family}-2"), dtype, lora=LoraSettings(lora, lora) if lora else None)
        )
    )
    planned = P.block_saved_bytes(count, T, P.DTYPE_BYTES[dtype])
    assert planned == pytest.approx(per_block, rel=0.01), (per_block, planned)
