"""The scoring forward kept as the first PPO update's forward (PPOArguments.reuses_rollout_forward)
changes no number, only the work done."""

import itertools

import pytest
import torch

from rlhf_lite.models import decoder_blocks, load_tokenizer
from rlhf_lite.ppo import PPOArguments, PPOTrainer, PromptBatches, RLHFEngine, encode_prompts
from rlhf_lite.ppo.config import SPEEDUPS
from rlhf_lite.training import step_rows
from tests.test_recipes import separable_pairs
from tests.tiny_models import make_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
OFF = {"actor": False, "critic": False}


def make_trainer(tmp_path, family: str = "llama", **settings) -> tuple[PPOTrainer, PromptBatches]:
    models = {kind: make_tiny_model(tmp_path, family, kind) for kind in ("causal", "reward")}
    settings = dict(per_device_generation_batch_size=4, per_device_training_batch_size=4) | settings
    args = PPOArguments(
        datasets=[str(separable_pairs(tmp_path / "pairs"))],
        data_split="1,1,1",
        output_dir="unused",
        max_answer_seq_len=6,
        report_to="none",
        actor_learning_rate=1e-2,
        critic_learning_rate=1e-2,
        **settings,
    )
    tok = load_tokenizer(str(models["causal"]))
    rows, _ = step_rows(args, part=2, need_pairs=False)
    prompts = PromptBatches(encode_prompts(tok, rows, args.max_prompt_seq_len), args, tok.pad_token_id)
    torch.manual_seed(0)
    engine = RLHFEngine(str(models["causal"]), str(models["reward"]), tok, num_total_iters=8, args=args)
    return PPOTrainer(engine, args), prompts


def count_forwards(model, calls: list):
    # The top block: it runs in every forward, also when the frozen-block reuse skips the bottom ones.
    return decoder_blocks(model)[-1].register_forward_hook(lambda *_: calls.append(1))


def run(tmp_path, reuse: bool, family: str = "llama", steps: int = 2, **settings) -> dict:
    """Experience, losses, training-time forwards of actor and critic, final trained weights."""
    trainer, prompts = make_trainer(tmp_path, family, **settings)
    if not reuse:
        trainer.engine.reuse_rollout_forward = OFF
    calls = {"actor": [], "critic": []}
    hooks = [count_forwards(getattr(trainer.engine, role), calls[role]) for role in calls]
    out = {"experience": [], "losses": [], "training_forwards": []}
    for _, batch in itertools.islice(prompts.batches(), steps):
        exp = trainer.generate_experience(batch)
        before = {role: len(c) for role, c in calls.items()}
        out["losses"].append(trainer.train_rlhf(exp))
        out["training_forwards"].append({role: len(c) - before[role] for role, c in calls.items()})
        out["experience"].append([getattr(exp, k) for k in ("seq", "logprobs", "ref_logprobs", "values", "scores")])
        assert not exp.graph  # used up (or dropped): no autograd graph outlives its update
    for hook in hooks:
        hook.remove()
    out["weights"] = [p.detach().clone() for role in ("actor", "critic") for p in trainer.trained[role]]
    out["reuse"] = dict(trainer.engine.reuse_rollout_forward)
    out["trunk_depth"] = dict(trainer.engine.trunk_depth)
    return out


def assert_same_numbers(a: dict, b: dict) -> None:
    for exp_a, exp_b in zip(a["experience"], b["experience"], strict=True):
        for x, y in zip(exp_a, exp_b, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    for la, lb in zip(a["losses"], b["losses"], strict=True):
        assert la == pytest.approx(lb, rel=1e-5, abs=1e-7)
    # The kept graph covers the rows in rollout order, the recomputed one in mini-batch order:
    # the weight gradients sum the same numbers in another order (last-bit differences, which
    # Adam at lr 1e-2 lifts to ~1e-6).
    for x, y in zip(a["weights"], b["weights"], strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "family,settings",
    [
        ("llama", {}),
        ("opt", {"actor_lora_dim": 4, "critic_lora_dim": 4}),
        ("bloom", {"actor_gradient_checkpointing": True, "critic_gradient_checkpointing": True}),
        ("llama", {"actor_trainable_layers": 1, "critic_trainable_layers": 1}),  # with the frozen-block reuse
    ],
)
def test_first_update_reuses_the_scoring_forward_with_the_same_result(tmp_path, family, settings):
    kept = run(tmp_path, True, family, **settings)
    plain = run(tmp_path, False, family, **settings)
    assert kept["reuse"] == {"actor": True, "critic": True}
    assert_same_numbers(kept, plain)
    assert plain["training_forwards"] == [{"actor": 1, "critic": 1}] * 2
    assert kept["training_forwards"] == [{"actor": 0, "critic": 0}] * 2


def test_all_speedups_off_give_the_same_numbers(tmp_path):
    """PPOArguments.disable_speedups, the one switch of the four speed-ups (ppo/config.py: SPEEDUPS)."""
    settings = dict(
        per_device_generation_batch_size=8,
        per_device_training_batch_size=8,
        actor_lora_dim=4,  # merged_lora
        actor_trainable_layers=1,  # frozen_blocks
        critic_trainable_layers=1,
    )
    fast = run(tmp_path, True, **settings)
    plain = run(tmp_path, True, disable_speedups=list(SPEEDUPS), **settings)
    assert fast["reuse"] == {"actor": True, "critic": True} and plain["reuse"] == OFF
    assert fast["trunk_depth"]["actor"] > 0 and plain["trunk_depth"] == {"actor": 0, "critic": 0, "reward": 0}
    assert plain["training_forwards"] == [{"actor": 1, "critic": 1}] * 2
    assert_same_numbers(fast, plain)


def test_later_epochs_run_their_own_forward(tmp_path):
    kept = run(tmp_path, True, ppo_epochs=2)
    plain = run(tmp_path, False, ppo_epochs=2)
    assert_same_numbers(kept, plain)
    assert kept["training_forwards"] == [{"actor": 1, "critic": 1}] * 2  # the second epoch's
    assert plain["training_forwards"] == [{"actor": 2, "critic": 2}] * 2


def test_a_graph_made_before_an_update_is_not_used_after_it(tmp_path):
    def out_of_order(reuse: bool) -> tuple[list, int]:
        trainer, prompts = make_trainer(tmp_path)
        if not reuse:
            trainer.engine.reuse_rollout_forward = OFF
        first, second = (trainer.generate_experience(b) for _, b in itertools.islice(prompts.batches(), 2))
        losses = [trainer.train_rlhf(second)]  # changes the weights first's graph was made with
        calls: list = []
        hook = count_forwards(trainer.engine.actor, calls)
        losses.append(trainer.train_rlhf(first))
        hook.remove()
        assert not first.graph
        return losses, len(calls)

    (kept, kept_calls), (plain, plain_calls) = out_of_order(True), out_of_order(False)
    assert sum(kept, ()) == pytest.approx(sum(plain, ()), rel=1e-5, abs=1e-7)
    assert kept_calls == plain_calls == 1  # recomputed with the current weights


@pytest.mark.parametrize(
    "settings,expected",
    [
        ({}, {"actor": True, "critic": True}),
        ({"per_device_generation_batch_size": 8}, {"actor": False, "critic": False}),  # 2 mini-batches
        ({"generation_batches": 2}, {"actor": False, "critic": False}),  # a buffer of experiences
        ({"disable_actor_dropout": False}, {"actor": False, "critic": True}),
        ({"critic_lora_dim": 4, "lora_dropout": 0.1}, {"actor": True, "critic": False}),
    ],
)
def test_when_the_scoring_forward_is_reused(settings, expected):
    args = PPOArguments(**({"per_device_generation_batch_size": 4, "per_device_training_batch_size": 4} | settings))
    assert {role: args.reuses_rollout_forward(role) for role in expected} == expected
    assert not args.reuses_rollout_forward("actor", zero_stage=3)


def test_generation_uses_merged_lora_copies_and_leaves_the_base_weights_as_they_were(tmp_path):
    from peft.tuners.lora import LoraLayer

    from rlhf_lite.ppo.engine import merged_lora

    trainer, prompts = make_trainer(tmp_path, actor_lora_dim=4)
    actor = trainer.engine.actor
    with torch.no_grad():
        for name, p in actor.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)  # a trained adapter (PEFT starts B at zero)
    base = {n: p.clone() for n, p in actor.named_parameters() if "lora_" not in n}
    ids = torch.randint(3, 50, (2, 7))
    with torch.no_grad():
        expected = actor(input_ids=ids).logits
        with actor.disable_adapter():
            reference = actor(input_ids=ids).logits
        calls: list = []
        hooks = [
            m.lora_A.register_forward_hook(lambda *_: calls.append(1))
            for m in actor.modules()
            if isinstance(m, LoraLayer)
        ]
        with merged_lora(actor):
            merged = actor(input_ids=ids).logits
        for hook in hooks:
            hook.remove()
    assert calls == []  # one product per linear: the adapters did not run
    torch.testing.assert_close(merged, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(expected, reference)  # the adapter matters, so the merge does too
    assert all(torch.equal(p, base[n]) for n, p in actor.named_parameters() if "lora_" not in n)
    # the engine generates inside it, and the answers are the ones the unmerged actor samples
    _, batch = next(prompts.batches())
    torch.manual_seed(0)
    exp = trainer.generate_experience(batch)
    with torch.no_grad():
        torch.manual_seed(0)
        plain = actor.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            generation_config=trainer.generation_config,
        )
    assert exp.n_empty == 0 and torch.equal(exp.seq, plain)
