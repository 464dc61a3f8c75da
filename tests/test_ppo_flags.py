"""Every step-3 setting reaches the place that acts on it (the maths itself is tested in
test_ppo_maths.py, the main behaviours in test_ppo.py)."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rlhf_lite.ppo import PromptBatches
from rlhf_lite.ppo import trainer as trainer_module
from rlhf_lite.ppo.maths import gae_advantages, kl_shaped_rewards, masked_whiten
from tests import test_ppo
from tests.test_ppo import api, api_args, ppo_args, run_ppo, with_eos_at
from tests.test_recipes import metrics
from tests.tiny_models import make_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
tiny = test_ppo.tiny  # the same tiny SFT model, reward model and prompts


def test_model_and_optimizer_settings_reach_the_engine(tiny, tmp_path):
    args = api_args(
        tiny,
        tmp_path / "o",
        actor_lora_dim=4,
        lora_alpha_ratio=3.0,
        lora_dropout=0.1,
        lora_module_name=["q_proj", "v_proj"],
        actor_trainable_layers=1,
        critic_trainable_layers=1,
        critic_gradient_checkpointing=True,
        actor_learning_rate=1e-4,
        actor_lora_learning_rate=1e-3,
        critic_learning_rate=2e-5,
        actor_weight_decay=0.1,
        critic_weight_decay=0.2,
        lr_scheduler_type="constant_with_warmup",
        num_warmup_steps=2,
    )
    _, engine, trainer, _ = api(tiny, args)
    lora = engine.actor.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (4, 12, 0.1)
    assert set(lora.target_modules) == {"q_proj", "v_proj"} and list(lora.layers_to_transform) == [1]
    critic_trained = {n for n, p in engine.critic.named_parameters() if p.requires_grad}
    assert critic_trained and not any(".layers.0." in n for n in critic_trained)
    assert engine.critic.is_activation_checkpointing and not engine.actor.get_base_model().is_activation_checkpointing
    groups = {(g["initial_lr"], g["weight_decay"]) for g in engine.optimizer.param_groups}
    # LoRA matrices at their own rate; critic blocks decayed, its norms and biases not
    assert {(1e-3, 0.1), (2e-5, 0.2), (2e-5, 0.0)} <= groups
    assert engine.scheduler.get_last_lr()[0] == 0.0  # warmup starts at 0 ...
    for _ in range(2):
        engine.optimizer.step()
        engine.scheduler.step()
    assert engine.scheduler.get_last_lr()[0] == pytest.approx(1e-3)  # ... and stays constant after


def test_sampling_settings_reach_generation(tiny, tmp_path):
    args = api_args(tiny, tmp_path / "o", temperature=0.7, top_k=5, top_p=0.9, min_new_tokens=3, max_answer_seq_len=6)
    _, _, trainer, prompts = api(tiny, args)
    config = trainer.generation_config
    assert (config.temperature, config.top_k, config.top_p, config.min_new_tokens, config.max_new_tokens) == (
        0.7,
        5,
        0.9,
        3,
        6,
    )
    exp = trainer.generate_experience(next(prompts.batches())[1])
    assert 3 <= exp.mask.sum(1).min() and exp.mask.shape[1] <= 6
    # The log-probabilities are the sampling distribution's (logits / temperature), the actor's
    # and the reference's alike: otherwise every ratio and KL would be off-policy.
    for key in ("logprobs", "ref_logprobs"):
        torch.testing.assert_close(getattr(exp, key), test_ppo.sft_logprobs(tiny, exp, 0.7), atol=1e-5, rtol=0)
        assert not torch.allclose(getattr(exp, key), test_ppo.sft_logprobs(tiny, exp), atol=1e-3)


def test_reward_shaping_settings_reach_the_advantages(tiny, tmp_path):
    args = api_args(
        tiny, tmp_path / "o", init_kl_coef=0.3, clip_reward_value=0.5, gamma=0.9, lam=0.7, whiten_advantages=True
    )
    _, _, trainer, prompts = api(tiny, args)
    exp = trainer.generate_experience(next(prompts.batches())[1])
    exp.scores = torch.tensor([3.0, -3.0, 0.2, 0.1])[: len(exp.scores)]  # two beyond the clip
    rewards, _ = kl_shaped_rewards(exp.logprobs, exp.ref_logprobs, exp.scores, exp.mask, 0.3, 0.5)
    advantages, returns = gae_advantages(rewards, exp.values, exp.mask, 0.9, 0.7)
    got_adv, got_ret, _ = trainer._advantages(exp)
    assert torch.allclose(got_ret, returns) and torch.allclose(got_adv, masked_whiten(advantages, exp.mask))


def test_no_eos_penalty_lowers_the_score_of_unfinished_answers(tiny, tmp_path):
    _, engine, trainer, prompts = api(tiny, api_args(tiny, tmp_path / "o", no_eos_penalty=2.0))
    with_eos_at(trainer, {0: 1})  # row 0 ends, the others run out of tokens
    scored = engine.reward_scores
    raw = {}
    engine.reward_scores = lambda **kw: raw.setdefault("s", scored(**kw))
    exp = trainer.generate_experience(next(prompts.batches())[1])
    assert torch.allclose(exp.scores, raw["s"] - 2.0 * (~exp.has_eos).float())
    assert exp.has_eos.tolist()[0] and not any(exp.has_eos.tolist()[1:])


def test_empty_answer_score_keeps_and_scores_answers_that_are_only_eos(tiny, tmp_path):
    _, engine, trainer, prompts = api(tiny, api_args(tiny, tmp_path / "o", min_new_tokens=0, empty_answer_score=-3.0))
    with_eos_at(trainer, {0: 0, 1: 2, 3: 0})  # rows 0 and 3 answer only EOS
    scored = engine.reward_scores
    raw = {}
    engine.reward_scores = lambda **kw: raw.setdefault("s", scored(**kw))
    exp = trainer.generate_experience(next(prompts.batches())[1])
    assert exp.n_empty == 0 and len(exp.scores) == 4 and exp.mask[:, 0].tolist() == [1, 1, 1, 1]
    assert exp.scores[[0, 3]].tolist() == [-3.0, -3.0] and torch.equal(exp.scores[[1, 2]], raw["s"][[1, 2]])
    trainer.train_rlhf(exp)  # one-token answers train like any other


def test_clip_ranges_gradient_clipping_and_ema_beta_reach_the_update(tiny, tmp_path, monkeypatch):
    args = api_args(
        tiny,
        tmp_path / "o",
        cliprange=0.05,
        cliprange_value=0.07,
        max_grad_norm=0.3,
        enable_ema=True,
        ema_beta=0.25,
        per_device_training_batch_size=4,
    )  # one update
    _, engine, trainer, prompts = api(tiny, args)
    seen = {}

    def recording(name, real):
        def wrapped(*a):
            seen[name] = a[-1]  # the clip range is the last argument
            return real(*a)

        return wrapped

    for name in ("policy_loss", "value_loss"):
        monkeypatch.setattr(trainer_module, name, recording(name, getattr(trainer_module, name)))
    clipped = []
    real_clip = trainer.accelerator.clip_grad_norm_
    monkeypatch.setattr(
        trainer.accelerator, "clip_grad_norm_", lambda params, norm: clipped.append(norm) or real_clip(params, norm)
    )
    before = [p.detach().clone() for p in trainer.trained["actor"]]
    trainer.train_rlhf(trainer.generate_experience(next(prompts.batches())[1]))
    assert seen == {"policy_loss": 0.05, "value_loss": 0.07} and set(clipped) == {0.3}
    for ema, old, new in zip(trainer.ema, before, trainer.trained["actor"]):
        assert torch.allclose(ema, 0.25 * old + 0.75 * new.detach())


def test_run_settings_reach_the_loop_and_outputs(tiny, tmp_path):
    out = tmp_path / "run"
    run_ppo(
        ppo_args(
            tiny,
            out,
            "--max_steps",
            "4",
            "--logging_steps",
            "2",
            "--save_steps",
            "1",
            "--save_total_limit",
            "2",
            "--merge_lora",
            "false",
            "--actor_lora_dim",
            "4",
            "--dtype",
            "bf16",
        )
    )
    assert [r["step"] for r in metrics(out)] == [2, 4]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert (out / "actor" / "adapter_config.json").is_file() and not (out / "actor" / "config.json").exists()
    args = api_args(tiny, tmp_path / "o", num_train_epochs=3)
    assert len(PromptBatches([[1]] * 20, args, pad_id=0)) == 3 * 5


def test_actor_quantization_and_a_separate_reward_model(tiny, tmp_path):
    other_rm = make_tiny_model(tmp_path / "rm2", "llama", "reward", seed=5)
    args = api_args(
        tiny, tmp_path / "o", actor_lora_dim=4, actor_quantization="8bit", reward_model_name_or_path=str(other_rm)
    )
    _, engine, trainer, prompts = api(tiny, args)
    assert engine.actor.get_base_model().is_quantized and engine.ref is None
    reward_weight = engine.reward.score.weight
    assert torch.equal(reward_weight, AutoModelForSequenceClassification.from_pretrained(other_rm).score.weight)
    assert not torch.equal(engine.critic.score.weight, reward_weight)
    trainer.train_rlhf(trainer.generate_experience(next(prompts.batches())[1]))
