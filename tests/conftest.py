import os

import pytest

# Tests never reach the hub: everything is built locally or read from ../shared.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and two threads next to another busy process
    made reward-model training here ten times slower (use with pytest.mark.usefixtures)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def diverging_optimizer(monkeypatch):
    """The first AdamW step moves every weight it updates by about 1e10: how a far too large
    learning rate blows a model up, now that the recipes refuse such learning rates."""
    import torch

    original, steps = torch.optim.AdamW.step, []

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 1:
            noise = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.add_(torch.randn(p.shape, generator=noise).to(p), alpha=1e10)
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return steps
