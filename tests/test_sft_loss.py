"""Step 1's answer-only loss equals TRL's own SFT loss, gradients and metrics included."""

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM
from trl import SFTConfig, SFTTrainer

from rlhf_lite.models import load_tokenizer
from rlhf_lite.sft import AnswerOnlySFTTrainer
from tests.tiny_models import make_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_loss_gradients_and_metrics_match_trl(tmp_path, family):
    path = make_tiny_model(tmp_path, family, "causal")
    tokenizer = load_tokenizer(str(path))
    data = Dataset.from_list(
        [
            {
                "prompt": f"\n\nHuman: question {i} {'long ' * i}?\n\nAssistant:",
                "completion": " yes thank you" + " more" * i,
            }
            for i in range(4)
        ]
    )
    results = []
    for cls in (SFTTrainer, AnswerOnlySFTTrainer):
        model = AutoModelForCausalLM.from_pretrained(path)
        config = SFTConfig(
            output_dir=str(tmp_path / cls.__name__),
            per_device_train_batch_size=4,
            use_cpu=True,
            bf16=False,
            report_to="none",
            activation_checkpointing=False,
            completion_only_loss=True,
            max_length=64,
        )
        trainer = cls(model=model, args=config, train_dataset=data, processing_class=tokenizer)
        batch = next(iter(trainer.get_train_dataloader()))
        assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()  # prompts are masked
        model.train()
        if cls is AnswerOnlySFTTrainer:
            assert trainer._plain_loss_applies(model, batch, False)  # not TRL's path under another name
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=None)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        trainer.log({})
        logged = trainer.state.log_history[-1]
        metrics = {k: logged[k] for k in ("entropy", "mean_token_accuracy", "num_tokens")}
        results.append((loss.item(), grads, metrics))
    (loss_trl, grads_trl, metrics_trl), (loss_ours, grads_ours, metrics_ours) = results
    assert loss_ours == pytest.approx(loss_trl, rel=1e-5)
    assert grads_ours.keys() == grads_trl.keys()
    for name in grads_trl:
        torch.testing.assert_close(grads_ours[name], grads_trl[name], rtol=1e-4, atol=1e-6)
    assert metrics_ours == pytest.approx(metrics_trl, rel=1e-4)
