"""Step 3 learns: with a scripted reward PPO raises the reward while the KL to the SFT model stays
bounded, and the experience's masks keep prompt padding and everything after EOS out of the update.

The reward model is replaced by a function (`engine.reward_scores`) that pays for one token, so
a rise can only come from the policy-gradient path: sampling, log-probabilities, KL-shaped
rewards, GAE and the clipped PPO update working together.
"""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf_lite.batching import pad_batch
from tests.test_ppo import api, api_args, with_eos_at
from tests.test_recipes import separable_pairs
from tests.tiny_models import make_tiny_model

WORD = "Ġthe"  # the rewarded token: " the"
STEPS = 30  # generation batches of a learning run
# The score of an answer made only of WORD; an answer's score is SCORE x its share of WORD.
SCORE = 1.5
# What the last 5 batches' mean share of WORD must gain over the first 5 batches'. Observed over
# seeds 0-9 (30 batches of 32 prompts; the SFT model says WORD ~10% of the time): full fine-tuning
# +0.13..+0.20, LoRA +0.11..+0.20; with the actor frozen (learning rate 0, see
# test_frozen_actor_fails_the_learning_criterion) -0.01..+0.02.
MIN_GAIN = 0.07
# kl/sequence (nats per answer of <= 8 tokens) stayed below 3.6 in those runs, with init_kl_coef 0.1.
MAX_KL = 5.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sft_that_says(src, dst, word: str, p: float = 0.1):
    """`src` made SFT-like: a sharper output distribution (a random model's is near uniform, so
    LoRA on its blocks could barely move it) that puts about `p` on `word` after the prompts."""
    model = AutoModelForCausalLM.from_pretrained(src)
    tok = AutoTokenizer.from_pretrained(src)
    target = tok.convert_tokens_to_ids(word)
    prompt = torch.tensor(tok("\n\nHuman: question 1?\n\nAssistant:")["input_ids"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.lm_head.weight.mul_(10)  # logits of std ~1 instead of ~0.1
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(50):  # a few steps of "SFT" on prompts followed by random answers
        answers = torch.randint(3, len(tok), (16, 8), generator=generator)
        ids = torch.cat([prompt.expand(16, -1), answers], 1)
        logp = model(ids).logits[:, -9:-1].log_softmax(-1)[..., target]
        if logp.exp().mean() > p:
            break
        (-logp.mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
    else:
        raise AssertionError(f"could not teach the tiny model to say {word!r}")
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    return dst, target


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppo_learning")
    plain = make_tiny_model(root, "llama", "causal")
    sft, word_id = sft_that_says(plain, root / "sft-the", WORD)
    return {
        "plain": plain,
        "sft": sft,
        "word_id": word_id,
        "rm": make_tiny_model(root, "llama", "reward", seed=1),
        "data": separable_pairs(root / "pairs", n_train=120),
    }  # 40 PPO prompts


# ------------------------------------------------------------------ 1. a scripted reward is learned


def learn(tiny, out, seed: int = 0, steps: int = STEPS, **kw) -> tuple[list[float], list[float]]:
    """`steps` generation batches of PPO against the scripted reward; per batch, the mean share
    of the rewarded token in the answers and trainer.stats['kl/sequence']."""
    values = dict(
        per_device_generation_batch_size=32,
        per_device_training_batch_size=16,
        num_train_epochs=steps,
        critic_learning_rate=1e-3,
        lr_scheduler_type="constant",
        init_kl_coef=0.1,
        seed=1234 + seed,
        # top_k = the whole vocabulary: plain sampling. (top_k=0 should mean the same but
        # currently samples from the top 50 only, see test_top_k_0_samples_the_whole_vocabulary.)
        top_k=len(AutoTokenizer.from_pretrained(tiny["sft"])),
    )
    args = api_args(tiny, out, **(values | kw))
    torch.manual_seed(seed)  # LoRA's initial weights, sampling, mini-batch order
    tok, engine, trainer, prompts = api(tiny, args, num_total_iters=steps * 2)
    prompt_len = {}

    def scripted_reward(input_ids, attention_mask, position_ids=None):
        """SCORE x the share of the answer's real tokens that are the rewarded one."""
        P = prompt_len["P"]
        answer, real = input_ids[:, P:], attention_mask[:, P:].float()
        return SCORE * ((answer == tiny["word_id"]).float() * real).sum(1) / real.sum(1)

    engine.reward_scores = scripted_reward

    shares, kls = [], []
    for _, batch in prompts.batches():
        prompt_len["P"] = batch["input_ids"].shape[1]
        exp = trainer.generate_experience(batch)
        trainer.train_rlhf(exp)
        shares.append(exp.scores.mean().item() / SCORE)
        kls.append(trainer.stats["kl/sequence"])
    assert len(shares) == steps
    return shares, kls


def mean(xs):
    return sum(xs) / len(xs)


@pytest.mark.parametrize(
    "variant", [dict(actor_learning_rate=7e-4), dict(actor_lora_dim=8, actor_learning_rate=5e-3)], ids=["full", "lora"]
)
def test_scripted_reward_rises_while_kl_stays_bounded(tiny, tmp_path, variant):
    shares, kls = learn(tiny, tmp_path / "out", **variant)
    curve = " ".join(f"{s:.2f}" for s in shares)
    assert 0.03 < shares[0] < 0.3, f"the SFT model should say the word now and then: {curve}"
    assert mean(shares[-5:]) - mean(shares[:5]) > MIN_GAIN, curve
    assert kls[0] == pytest.approx(0.0, abs=1e-5)  # the first batch comes from the SFT policy itself
    assert max(kls) < MAX_KL, " ".join(f"{k:.2f}" for k in kls)


def test_frozen_actor_fails_the_learning_criterion(tiny, tmp_path):
    """The criterion above can fail: without actor updates, sampling noise alone does not pass it."""
    shares, kls = learn(tiny, tmp_path / "out", actor_learning_rate=0.0)
    assert mean(shares[-5:]) - mean(shares[:5]) < MIN_GAIN, " ".join(f"{s:.2f}" for s in shares)
    assert kls == [0.0] * STEPS  # the actor is still the reference


def test_top_k_0_samples_the_whole_vocabulary(tiny, tmp_path):
    """top_k=0 (the default) means no top-k filtering; the near-uniform plain tiny model then
    samples tokens far down its ranking (transformers >= 5 turns top_k=None into its default, 50)."""
    args = api_args({**tiny, "sft": tiny["plain"]}, tmp_path / "out", per_device_generation_batch_size=8)
    assert args.top_k == 0
    torch.manual_seed(0)
    tok, engine, trainer, prompts = api({**tiny, "sft": tiny["plain"]}, args)
    exp = trainer.generate_experience(next(prompts.batches())[1])
    P, mask = exp.prompt_len, exp.attention_mask
    with torch.no_grad():
        logits = engine.actor(
            input_ids=exp.seq, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)
        ).logits[:, P - 1 : -1]
    sampled = logits.gather(-1, exp.seq[:, P:, None])
    rank = (logits > sampled).sum(-1)[exp.mask.bool()]  # 0: the most likely token
    # 64 draws from ~384 near-equally likely tokens all landing in the top 50: chance ~ (50/384)^64
    assert rank.max() >= 50, f"every sampled token is in the actor's top {int(rank.max()) + 1}"


# ------------------------------------------------------------------ 2. what the masks keep out

# EOS at answer position 1, 4 and 6 (garbage follows it); the last row never stops.
EOS_AT = {0: 1, 1: 4, 2: 6}
PROMPTS = [
    "\n\nHuman: hi?\n\nAssistant:",
    "\n\nHuman: can you help me write a short poem about the sea?\n\nAssistant:",
    "\n\nHuman: what is the capital of France?\n\nAssistant:",
    "\n\nHuman: question 7?\n\nAssistant:",
]


def masked_engine(tiny, out):
    args = api_args({**tiny, "sft": tiny["plain"]}, out, actor_learning_rate=1e-3, critic_learning_rate=1e-3)
    tok, engine, trainer, _ = api({**tiny, "sft": tiny["plain"]}, args)
    return tok, engine, trainer


def left_padded_prompts(tok) -> dict:
    ids, mask = pad_batch(tok(PROMPTS)["input_ids"], tok.pad_token_id, "left")
    assert (mask == 0).any(1).sum() == 3  # every prompt but the longest is padded
    return {"input_ids": ids, "attention_mask": mask}


def trained_weights(trainer, exp) -> tuple[dict, tuple[float, float]]:
    torch.manual_seed(7)  # the same mini-batch order for every copy
    losses = trainer.train_rlhf(exp)
    return {k: v.detach().clone() for k, v in trainer.engine.unwrapped.state_dict().items()}, losses


def eos_experience(tiny, out):
    """(engine, trainer, prompts, experience) with EOS forced at EOS_AT in left-padded rows."""
    tok, engine, trainer = masked_engine(tiny, out)
    prompts = left_padded_prompts(tok)
    with_eos_at(trainer, EOS_AT)
    torch.manual_seed(0)
    return engine, trainer, prompts, trainer.generate_experience(prompts)


def test_experience_shapes_masks_and_zero_advantages_after_eos(tiny, tmp_path):
    _, trainer, prompts, exp = eos_experience(tiny, tmp_path / "out")
    P = exp.prompt_len
    B, A = 4, exp.seq.shape[1] - P
    assert P == prompts["input_ids"].shape[1] and A == 8  # the last row ran to max_answer_seq_len
    for key in ("logprobs", "ref_logprobs", "values", "mask"):
        assert getattr(exp, key).shape == (B, A), key
    assert exp.scores.shape == (B,)
    expected = torch.tensor(
        [[1.0] * (EOS_AT[r] + 1) + [0.0] * (A - EOS_AT[r] - 1) if r in EOS_AT else [1.0] * A for r in range(B)]
    )
    assert torch.equal(exp.mask, expected)
    assert torch.equal(exp.attention_mask, torch.cat([prompts["attention_mask"], expected.long()], 1))
    assert exp.has_eos.tolist() == [True, True, True, False]
    assert (exp.seq[:, P:][expected == 0] != trainer.eos_id).all()  # real garbage after EOS

    advantages, returns, kl = trainer._advantages(exp)
    for name, t in (("advantages", advantages), ("returns", returns), ("kl", kl)):
        assert t.shape == (B, A), name
        assert (t[expected == 0] == 0).all(), name  # exactly 0, not merely small
    assert (advantages[expected == 1] != 0).all()  # ... and not because everything is 0


def test_prompt_padding_and_tokens_after_eos_do_not_change_the_update(tiny, tmp_path):
    engine, trainer, prompts, exp = eos_experience(tiny, tmp_path / "a")
    P, mask = exp.prompt_len, exp.mask.bool()
    initial = {k: v.detach().clone() for k, v in engine.unwrapped.state_dict().items()}

    # The same experience with other tokens where the attention mask is 0 (prompt padding, answer
    # after EOS) and NaN in every per-token tensor where the answer mask is 0: a leak of either
    # would change the update, or make it NaN.
    noisy = copy.deepcopy(exp)
    g = torch.Generator().manual_seed(1)
    hidden = exp.attention_mask == 0
    assert hidden[:, :P].any() and hidden[:, P:].any()
    noisy.seq[hidden] = torch.randint(3, len(trainer.tokenizer), (int(hidden.sum()),), generator=g)
    for key in ("logprobs", "ref_logprobs", "values"):
        getattr(noisy, key)[~mask] = float("nan")
    # ... and, to show the comparison can fail, one with a different real answer token
    changed = copy.deepcopy(exp)
    changed.seq[1, P + 2] = 3 if changed.seq[1, P + 2] != 3 else 4  # neither EOS nor padding

    results = [trained_weights(trainer, exp)]
    for variant, out in ((noisy, "b"), (changed, "c")):
        _, _, other = masked_engine(tiny, tmp_path / out)
        results.append(trained_weights(other, variant))
    (clean, losses), (perturbed, noisy_losses), (real_change, _) = results

    assert any(not torch.equal(clean[k], initial[k]) for k in clean)  # the update did something
    assert noisy_losses == pytest.approx(losses, abs=1e-6)
    for k in clean:  # bitwise equal in practice
        torch.testing.assert_close(perturbed[k], clean[k], atol=1e-6, rtol=0, msg=k)
    assert any((real_change[k] - clean[k]).abs().max() > 1e-5 for k in clean)
