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
