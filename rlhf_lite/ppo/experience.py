from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Experience:
    """What `generate_experience` makes and `train_rlhf` learns from: a generation batch scored by all
    four models; per-token tensors are (B, A), answers only."""

    seq: Tensor  # (B, P + A) left-padded prompt, then the answer (padded after its EOS)
    attention_mask: Tensor  # (B, P + A)
    prompt_len: int  # P
    mask: Tensor  # (B, A) float: the real answer tokens, EOS included
    logprobs: Tensor  # the actor's, as it sampled them
    ref_logprobs: Tensor  # the reference's (the SFT model)
    values: Tensor  # the critic's
    scores: Tensor  # (B,) the reward model's, after no_eos_penalty / empty_answer_score
    has_eos: Tensor  # (B,) bool
    n_empty: int  # answers dropped as only EOS
    time_generation: float
    time_scoring: float
    # The speed-ups' state: frozen blocks' outputs (trunk.py), scoring outputs with their graphs.
    trunk: dict = field(default_factory=dict, repr=False)
    graph: dict = field(default_factory=dict, repr=False)
