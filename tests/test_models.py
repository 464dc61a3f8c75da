"""Model and tokenizer loading on tiny offline OPT, BLOOM and Llama checkpoints."""

import json

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2Config,
    MistralConfig,
    OPTConfig,
    Qwen2Config,
)

from rlhf_lite.errors import ConfigError, ModelError
from rlhf_lite.models import (
    LORA_TARGETS,
    LoraSettings,
    ModelSettings,
    check_same_vocab,
    default_lora_targets,
    load_causal_lm,
    load_reward_model,
    load_tokenizer,
    model_family,
    resolve_model_path,
    save_model,
)
from tests.tiny_models import CORPUS, FAMILIES, make_tiny_model, make_tokenizer

TEXTS = ["Human: What is the capital of France? Assistant: Paris.", "你好，世界"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {(f, k): str(make_tiny_model(root, f, k)) for f in FAMILIES for k in ("causal", "reward")}


def batch(tokenizer):
    return tokenizer(TEXTS, return_tensors="pt", padding=True)


def lora_names(model):
    return {n for n, p in model.named_parameters() if "lora_" in n}


# --------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize(
    "family, pad, bos, eos, unk", [("opt", 1, 2, 2, 3), ("bloom", 3, 1, 2, 0), ("llama", 0, 1, 2, 0)]
)
def test_tokenizer_special_tokens_per_family(tiny, family, pad, bos, eos, unk):
    tok = load_tokenizer(tiny[family, "causal"])
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (pad, bos, eos, unk)
    assert tok.pad_token_id != tok.eos_token_id
    # Padding must never eat the EOS that SFT teaches the model to emit.
    ids = tok(["hi" + tok.eos_token, TEXTS[0]], padding=True)["input_ids"][0]
    assert ids.count(eos) >= 1 and ids.count(pad) > 0


def test_llama_without_pad_gets_unk_not_eos(tiny):
    raw = AutoTokenizer.from_pretrained(tiny["llama", "causal"])
    assert raw.pad_token is None  # like Llama-2
    tok = load_tokenizer(tiny["llama", "causal"])
    assert tok.pad_token == "<unk>" and tok.pad_token_id != tok.eos_token_id


def test_pad_equal_to_eos_is_replaced(tmp_path):
    tok = make_tokenizer("llama")
    tok.pad_token = tok.eos_token  # what many recipes (and SmolLM2's GGUF) do
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    fixed = load_tokenizer(str(tmp_path))
    assert fixed.pad_token_id not in (fixed.eos_token_id, fixed.bos_token_id)


def test_pad_token_added_and_model_resized(tmp_path):
    path = make_tiny_model(tmp_path, "llama")
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    cfg.pop("unk_token", None)  # nothing left to reuse as pad
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    tok = load_tokenizer(str(path))
    assert tok.pad_token == "<pad>" and tok.pad_token_id == len(tok) - 1
    model = load_causal_lm(ModelSettings(str(path)), tok)
    assert model.get_input_embeddings().num_embeddings >= len(tok)
    assert model.config.pad_token_id == tok.pad_token_id
    model(**batch(tok))  # the new pad id is a valid row


def test_padding_side(tiny):
    path = tiny["opt", "causal"]
    assert load_tokenizer(path).padding_side == "right"
    left = load_tokenizer(path, padding_side="left")
    ids = left(TEXTS, padding=True)["input_ids"]
    assert ids[1][0] == left.pad_token_id and ids[1][-1] != left.pad_token_id
    with pytest.raises(ConfigError):
        load_tokenizer(path, padding_side="middle")


def test_dir_without_tokenizer_is_refused(tmp_path):
    path = make_tiny_model(tmp_path, "opt", with_tokenizer=False)
    with pytest.raises(ModelError, match=str(path)):
        load_tokenizer(str(path))
    with pytest.raises(ModelError, match="no tokenizer files"):
        load_causal_lm(ModelSettings(str(path)))


@pytest.mark.parametrize("name", ["./no/such/model", "/abs/no-such-model", "a/b/c", "missing.gguf"])
def test_nonexistent_path(name):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_path(name)
    with pytest.raises(ModelError, match="does not exist"):
        load_causal_lm(ModelSettings(name))


def test_unreachable_hub_name_is_a_model_error():
    with pytest.raises(ModelError, match="not a local directory and could not be loaded from the hub"):
        load_tokenizer("rlhf-lite-tests/no-such-model")


def test_dir_without_config_and_adapter_only_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        load_causal_lm(ModelSettings(str(tmp_path / "empty")))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelError, match="only a LoRA adapter"):
        load_reward_model(ModelSettings(str(tmp_path / "adapter")))


def test_settings_validation():
    assert ModelSettings("x").trust_remote_code is False
    with pytest.raises(ConfigError):
        ModelSettings("x", dtype="float8")
    with pytest.raises(ConfigError):
        ModelSettings("x", load_in_8bit=True, load_in_4bit=True)


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("family", FAMILIES)
def test_causal_and_reward_load(tiny, family):
    tok = load_tokenizer(tiny[family, "causal"])
    actor = load_causal_lm(ModelSettings(tiny[family, "causal"]), tok)
    out = actor(**batch(tok), labels=batch(tok)["input_ids"])
    assert out.logits.shape[:2] == batch(tok)["input_ids"].shape and torch.isfinite(out.loss)
    assert actor.generation_config.pad_token_id == tok.pad_token_id

    # Step 2 starts from a causal checkpoint, PPO from a trained reward model: both must load.
    for kind in ("causal", "reward"):
        rm = load_reward_model(ModelSettings(tiny[family, kind]), tok, trained=kind == "reward").eval()
        assert rm.config.num_labels == 1 and rm.config.pad_token_id == tok.pad_token_id
        with torch.no_grad():
            padded = rm(**batch(tok)).logits
            alone = rm(**tok(TEXTS[1:], return_tensors="pt")).logits
        assert padded.shape == (2, 1)
        # The score is read at the last real token, whatever padding follows it.
        torch.testing.assert_close(padded[1], alone[0])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["causal", "reward"])
def test_lora_with_gradient_checkpointing_trains_only_adapters(tiny, family, kind):
    tok = load_tokenizer(tiny[family, "causal"])
    settings = ModelSettings(tiny[family, "causal"], lora=LoraSettings(r=4), gradient_checkpointing=True)
    model = load_causal_lm(settings, tok) if kind == "causal" else load_reward_model(settings, tok, trained=False)
    assert model.get_base_model().is_activation_checkpointing
    model.train()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or (kind == "reward" and "score" in n) for n in trainable)
    if kind == "reward":
        assert any("score" in n for n in trainable)  # the new head trains in full

    opt = torch.optim.SGD(trainable.values(), lr=0.1)
    for _ in range(2):  # lora_B starts at zero, so lora_A only sees a gradient after one step
        opt.zero_grad()
        b = batch(tok)
        out = model(**b, labels=b["input_ids"]) if kind == "causal" else model(**b)
        loss = out.loss if kind == "causal" else out.logits.sum()
        loss.backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.values())
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_default_targets(tiny, family):
    model = load_causal_lm(ModelSettings(tiny[family, "causal"], lora=LoraSettings()))
    wrapped = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in lora_names(model) if ".lora_A" in n}
    assert wrapped == set(LORA_TARGETS[family])


def test_lora_explicit_targets(tiny):
    model = load_causal_lm(ModelSettings(tiny["opt", "causal"], lora=LoraSettings(target_modules=["v_proj"])))
    assert lora_names(model) and all(".v_proj." in n for n in lora_names(model))


def test_model_family_and_fallback_targets():
    assert model_family(OPTConfig()) == "opt"
    assert model_family(MistralConfig()) == model_family(Qwen2Config()) == "llama"
    assert model_family(GPT2Config()) == "gpt2"
    assert default_lora_targets(GPT2Config()) == "all-linear"


@pytest.mark.parametrize(
    "family, fields",
    [
        ("opt", ["dropout", "attention_dropout", "activation_dropout"]),
        ("bloom", ["hidden_dropout", "attention_dropout"]),
        ("llama", ["attention_dropout"]),
    ],
)
def test_dropout_override_reaches_config(tiny, family, fields):
    path = tiny[family, "causal"]
    assert all(getattr(load_causal_lm(ModelSettings(path)).config, f) == 0.1 for f in fields)
    config = load_causal_lm(ModelSettings(path, dropout=0.0)).config
    assert all(getattr(config, f) == 0.0 for f in fields)
    if family == "opt":
        assert load_causal_lm(ModelSettings(path, dropout=0.2)).config.layerdrop == 0.0


def test_dropout_override_gpt2_style_names(tmp_path):
    config = GPT2Config(vocab_size=384, n_embd=32, n_layer=1, n_head=2)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    make_tokenizer("opt").save_pretrained(tmp_path)
    got = load_causal_lm(ModelSettings(str(tmp_path), dropout=0.0)).config
    assert got.attn_pdrop == got.resid_pdrop == got.embd_pdrop == got.summary_first_dropout == 0.0


@pytest.mark.parametrize(
    "dtype, expected", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("auto", torch.float32)]
)
def test_dtype(tiny, dtype, expected):
    tok = load_tokenizer(tiny["llama", "causal"])
    model = load_causal_lm(ModelSettings(tiny["llama", "causal"], dtype=dtype), tok)
    assert {p.dtype for p in model.parameters()} == {expected}
    assert model(**batch(tok)).logits.dtype == expected


@pytest.mark.parametrize("bits", ["load_in_8bit", "load_in_4bit"])
def test_quantized_lora_trains_on_cpu(tiny, bits):
    pytest.importorskip("bitsandbytes")
    tok = load_tokenizer(tiny["opt", "causal"])
    settings = ModelSettings(
        tiny["opt", "causal"], lora=LoraSettings(r=4), gradient_checkpointing=True, **{bits: True}
    )
    model = load_causal_lm(settings, tok)
    layer = model.get_base_model().model.decoder.layers[0].self_attn.q_proj.base_layer
    assert type(layer).__name__ == ("Linear8bitLt" if bits == "load_in_8bit" else "Linear4bit")
    model.train()
    b = batch(tok)
    model(**b, labels=b["input_ids"]).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads)
    assert all(g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)


# --------------------------------------------------------------------------- vocab check


def test_check_same_vocab(tiny, tmp_path):
    opt = load_tokenizer(tiny["opt", "causal"])
    check_same_vocab(opt, load_tokenizer(tiny["opt", "reward"]), "actor", "critic")

    llama = load_tokenizer(tiny["llama", "causal"])
    assert len(llama) == len(opt)  # same size, different special tokens
    with pytest.raises(ModelError, match="actor 'opt-actor' and reward model 'llama-rm'"):
        check_same_vocab(opt, llama, "opt-actor", "llama-rm")

    smaller = load_tokenizer(str(make_tiny_model(tmp_path, "opt", vocab=320)))
    with pytest.raises(ModelError, match="384 vs 320 tokens"):
        check_same_vocab(opt, smaller, "a", "b")

    # Same size and special tokens, but BPE merges learnt from other text.
    corpus = [*CORPUS, *["Completely different text about tokenizers and vocabularies."] * 5]
    other = load_tokenizer(str(make_tiny_model(tmp_path, "opt", corpus=corpus)))
    assert len(other) == len(opt) and other.pad_token_id == opt.pad_token_id
    with pytest.raises(ModelError, match="map to different ids"):
        check_same_vocab(opt, other, "a", "b")


# --------------------------------------------------------------------------- saving


def _perturb_lora(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or "modules_to_save" in n:
                p.add_(torch.randn_like(p) * 0.2)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_merged_lora_reloads_with_plain_transformers(tiny, tmp_path, family):
    tok = load_tokenizer(tiny[family, "causal"])
    model = load_causal_lm(ModelSettings(tiny[family, "causal"], lora=LoraSettings(r=4)), tok).eval()
    _perturb_lora(model)
    out = save_model(model, tok, tmp_path / "merged")
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "adapter_config.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind

    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    reloaded_tok = AutoTokenizer.from_pretrained(out)
    b = reloaded_tok(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**b).logits, model(**b).logits, atol=1e-5, rtol=1e-4)
    assert lora_names(model)  # the model being trained is left as it was


def test_save_merged_reward_model_and_adapter_only(tiny, tmp_path):
    tok = load_tokenizer(tiny["bloom", "causal"])
    model = load_reward_model(
        ModelSettings(tiny["bloom", "causal"], lora=LoraSettings(r=4)), tok, trained=False
    ).eval()
    _perturb_lora(model)
    out = save_model(model, tok, tmp_path / "rm")
    reloaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    b = batch(tok)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**b).logits, model(**b).logits, atol=1e-5, rtol=1e-4)

    adapter = save_model(model, tok, tmp_path / "rm", merge_lora=False)  # replaces the merged dir
    assert (adapter / "adapter_config.json").exists() and not (adapter / "config.json").exists()


def test_save_merged_from_8bit_is_full_precision(tiny, tmp_path):
    pytest.importorskip("bitsandbytes")
    tok = load_tokenizer(tiny["llama", "causal"])
    settings = ModelSettings(tiny["llama", "causal"], lora=LoraSettings(r=4), load_in_8bit=True)
    model = load_causal_lm(settings, tok).eval()
    _perturb_lora(model)
    out = save_model(model, tok, tmp_path / "merged")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert {p.dtype for p in reloaded.parameters()} == {torch.float32}
    b = batch(tok)
    with torch.no_grad():  # int8 vs fp32 base: close, not equal
        torch.testing.assert_close(reloaded(**b).logits, model(**b).logits, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["causal", "reward"])
def test_trainable_layers_trains_the_top_blocks_and_backward_stops_there(tiny, family, kind):
    tok = load_tokenizer(tiny[family, "causal"])
    load = load_causal_lm if kind == "causal" else load_reward_model
    model = load(ModelSettings(tiny[family, kind], trainable_layers=1), tok)  # tiny models have 2 blocks
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    blocks = {"opt": "model.decoder.layers.", "bloom": "transformer.h.", "llama": "model.layers."}[family]
    assert any(n.startswith(blocks + "1.") for n in trainable)
    assert not any(n.startswith(blocks + "0.") or "embed" in n for n in trainable)
    assert any(("norm" in n or "ln_f" in n) and not n.startswith(blocks) for n in trainable)
    if kind == "reward":
        assert "score.weight" in trainable
    b = batch(tok)
    out = model(**b, labels=b["input_ids"]) if kind == "causal" else model(**b)
    (out.loss if kind == "causal" else out.logits.sum()).backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n in trainable)
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
    with pytest.raises(ConfigError):
        ModelSettings("x", trainable_layers=0)


def test_trainable_layers_with_lora_adapts_only_the_top_blocks(tiny):
    model = load_causal_lm(ModelSettings(tiny["llama", "causal"], lora=LoraSettings(r=4), trainable_layers=1))
    adapted = {n.split(".layers.")[1].split(".")[0] for n in lora_names(model)}
    assert adapted == {"1"}
