"""Reusing the frozen bottom blocks (rlhf_lite/trunk.py) changes no number, only the work done."""

import itertools

import pytest
import torch

from rlhf_lite.models import decoder_blocks, load_tokenizer
from rlhf_lite.ppo import PPOArguments, PPOTrainer, PromptBatches, RLHFEngine, encode_prompts
from rlhf_lite.training import step_rows
from rlhf_lite.trunk import Recorded, capture, frozen_depth, replay
from tests.test_recipes import separable_pairs
from tests.tiny_models import make_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
NO_REUSE = {"actor": 0, "critic": 0, "reward": 0}


def two_ppo_steps(models: dict, data, reuse: bool, **settings) -> tuple[list, int]:
    """(per step: experience tensors and losses, forwards of the actor's block 0 while training)."""
    args = PPOArguments(
        datasets=[str(data)],
        data_split="1,1,1",
        output_dir="unused",
        max_answer_seq_len=6,
        per_device_generation_batch_size=4,
        per_device_training_batch_size=2,
        ppo_epochs=2,
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
    trainer = PPOTrainer(engine, args)
    if not reuse:
        trainer.trunk_depth = NO_REUSE
    calls = []
    hook = decoder_blocks(engine.actor)[0].register_forward_hook(lambda *_: calls.append(1))
    steps = []
    for _, batch in itertools.islice(prompts.batches(), 2):
        exp = trainer.generate_experience(batch)
        n = len(calls)
        losses = trainer.train_rlhf(exp)
        steps.append(
            (
                [getattr(exp, k) for k in ("seq", "logprobs", "ref_logprobs", "values", "scores")],
                losses,
                len(calls) - n,
            )
        )
    hook.remove()
    return steps, trainer.trunk_depth


@pytest.mark.parametrize("family,lora", [("llama", 0), ("opt", 0), ("bloom", 0), ("llama", 4)])
def test_reused_blocks_give_the_same_experience_and_losses(tmp_path, family, lora):
    models = {kind: make_tiny_model(tmp_path, family, kind) for kind in ("causal", "reward")}
    data = separable_pairs(tmp_path / "pairs")
    settings = dict(actor_trainable_layers=1, critic_trainable_layers=1, actor_lora_dim=lora, critic_lora_dim=lora)
    reused, depth = two_ppo_steps(models, data, True, **settings)
    plain, _ = two_ppo_steps(models, data, False, **settings)
    assert depth == {"actor": 1, "critic": 1, "reward": 1}  # of 2 blocks, the bottom one is frozen
    for (exp_a, losses_a, calls_a), (exp_b, losses_b, calls_b) in zip(reused, plain, strict=True):
        for a, b in zip(exp_a, exp_b):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert losses_a == pytest.approx(losses_b, rel=1e-4, abs=1e-6)
        assert calls_a == 0 and calls_b == 4  # 2 epochs x 2 mini-batches ran block 0 without reuse


def test_frozen_depth_follows_what_trains(tmp_path):
    path = make_tiny_model(tmp_path, "llama", "causal")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    assert frozen_depth(model) == 0  # everything trains
    model.requires_grad_(False)
    assert frozen_depth(model) == 2  # nothing does
    decoder_blocks(model)[1].mlp.up_proj.weight.requires_grad_(True)
    assert frozen_depth(model) == 1
    model.get_input_embeddings().weight.requires_grad_(True)
    assert frozen_depth(model) == 0  # a trained embedding changes every block's input


def test_replay_restores_the_blocks_and_matches_a_full_forward(tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(make_tiny_model(tmp_path, "llama", "causal")).eval()
    ids = torch.randint(3, 50, (3, 7))
    blocks = list(decoder_blocks(model))
    trunk = Recorded(ids.shape)
    with torch.no_grad(), capture(model, 1, trunk):
        full = model(input_ids=ids).logits
    with torch.no_grad(), replay(model, 1, trunk, torch.tensor([2, 0])):
        replayed = model(input_ids=ids[[2, 0]]).logits
    torch.testing.assert_close(replayed, full[[2, 0]])
    # a group of rows and columns at a time (padding.row_groups), into and out of the same record
    part = Recorded(ids.shape)
    for rows, columns in ((torch.tensor([0, 2]), slice(0, 7)), (torch.tensor([1]), slice(3, 7))):
        with torch.no_grad(), capture(model, 1, part, rows, columns):
            model(input_ids=ids[rows, columns])
    torch.testing.assert_close(part.hidden[[0, 2]], trunk.hidden[[0, 2]])
    with torch.no_grad(), replay(model, 1, part, torch.tensor([1]), slice(3, 7)):
        replayed = model(input_ids=ids[[1], 3:]).logits
    with torch.no_grad():
        torch.testing.assert_close(replayed, model(input_ids=ids[[1], 3:]).logits)
    assert list(decoder_blocks(model)) == blocks


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_reward_training_replays_frozen_blocks_after_the_first_epoch(tmp_path, family):
    from datasets import Dataset
    from trl import RewardConfig

    from rlhf_lite.models import ModelSettings, load_reward_model
    from rlhf_lite.rm import PairwiseRewardTrainer

    path = str(make_tiny_model(tmp_path, family, "reward"))
    tok = load_tokenizer(path)
    gen = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(5, 90, (n,), generator=gen).tolist()  # noqa: E731
    data = Dataset.from_list([{"chosen_ids": ids(n), "rejected_ids": ids(n + 2)} for n in (3, 5, 7, 9, 4, 6)])

    def train(cache_gb: float, loss: str) -> tuple[list, int, int]:
        torch.manual_seed(0)
        model = load_reward_model(ModelSettings(path, trainable_layers=1, dropout=0.0), tok)
        calls = []
        hook = decoder_blocks(model)[0].register_forward_hook(lambda *_: calls.append(1))
        config = RewardConfig(
            output_dir=str(tmp_path / f"{cache_gb}{loss}"),
            per_device_train_batch_size=2,
            num_train_epochs=3,
            learning_rate=1e-2,
            use_cpu=True,
            bf16=False,
            report_to="none",
            activation_checkpointing=False,
            disable_dropout=True,
            save_strategy="no",
            logging_steps=1,
            seed=0,
        )
        trainer = PairwiseRewardTrainer(
            model=model,
            args=config,
            train_dataset=data,
            processing_class=tok,
            reward_loss=loss,
            frozen_block_cache_gb=cache_gb,
        )
        trainer.train()
        hook.remove()
        return [m["loss"] for m in trainer.state.log_history if "loss" in m], len(calls), trainer.trunk_depth

    for loss in ("last_token", "divergence"):
        cached, plain = train(1.0, loss), train(0.0, loss)
        assert cached[2] == 1 and plain[2] == 0
        assert cached[0] == pytest.approx(plain[0], rel=1e-4, abs=1e-6) and len(cached[0]) == 9
        assert cached[1] == 3 and plain[1] == 9  # block 0 ran in the first of 3 epochs only


def test_reward_training_runs_every_block_when_the_cache_would_not_fit(tmp_path, capsys):
    from datasets import Dataset
    from trl import RewardConfig

    from rlhf_lite.models import ModelSettings, load_reward_model
    from rlhf_lite.rm import PairwiseRewardTrainer

    path = str(make_tiny_model(tmp_path, "llama", "reward"))
    model = load_reward_model(ModelSettings(path, trainable_layers=1, dropout=0.0), load_tokenizer(path))
    data = Dataset.from_list([{"chosen_ids": [5, 6, 7], "rejected_ids": [5, 6, 8]}] * 4)
    config = RewardConfig(
        output_dir=str(tmp_path / "o"),
        num_train_epochs=2,
        use_cpu=True,
        bf16=False,
        report_to="none",
        activation_checkpointing=False,
        disable_dropout=True,
    )
    trainer = PairwiseRewardTrainer(
        model=model, args=config, train_dataset=data, frozen_block_cache_gb=1e-9, processing_class=load_tokenizer(path)
    )
    assert trainer.trunk_depth == 0 and "frozen_block_cache_gb" in capsys.readouterr().err
