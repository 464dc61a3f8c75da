"""One generation batch's experience: the sampled answers scored by all four models.

Per-token tensors are (B, A): answer positions only, A the longest answer; `mask` marks the real
answer tokens, EOS included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Experience:
    seq: Tensor  # (B, P + A) left-padded prompt, then the answer (padded after its EOS)
    attention_mask: Tensor  # (B, P + A)
    prompt_len: int  # P
    mask: Tensor  # (B, A) float
    logprobs: Tensor  # (B, A) the actor's, as it sampled them
    ref_logprobs: Tensor  # (B, A) the reference's (the SFT model)
    values: Tensor  # (B, A) the critic's
    scores: Tensor  # (B,) the reward model's, after no_eos_penalty / empty_answer_score
    has_eos: Tensor  # (B,) bool
    n_empty: int  # answers dropped as only EOS
    time_generation: float
    time_scoring: float
    # The speed-ups' state: each model's frozen blocks' output (trunk.py), and the scoring forward's
    # outputs with their autograd graphs (rollout_graphs), which only the first update may use.
    trunk: dict = field(default_factory=dict, repr=False)
    graph: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.seq)
