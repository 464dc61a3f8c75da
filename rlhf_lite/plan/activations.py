"""Activation, KV-cache and logits memory formulas, per block and per model."""

from __future__ import annotations

from typing import NamedTuple

from .architectures import TRL_TOKEN_CHUNK, TRL_VOCAB_CHUNK
from .counting import ModelCount

# Per block: (input width, linears reading that input, input already kept by another op).
# A trained linear keeps its input for the weight gradient; a LoRA linear keeps it for lora_A.
_GROUPS = {
    "opt": [
        ("h", ("q_proj", "k_proj", "v_proj"), False),
        ("h", ("out_proj",), True),
        ("h", ("fc1",), False),
        ("ffn", ("fc2",), True),
    ],
    "bloom": [
        ("h", ("query_key_value",), False),
        ("h", ("dense",), False),
        ("h", ("dense_h_to_4h",), False),
        ("ffn", ("dense_4h_to_h",), False),
    ],
    "llama": [
        ("h", ("q_proj", "k_proj", "v_proj"), False),
        ("h", ("o_proj",), True),
        ("h", ("gate_proj", "up_proj"), False),
        ("ffn", ("down_proj",), False),
    ],
}


def block_saved_bytes(m: ModelCount, T: int, d: int, autocast: bool = False, device: str = "cpu") -> float:
    """Bytes per token one trained block keeps for its backward pass (no checkpointing).

    d: bytes of an activation. OPT keeps its two LayerNorm inputs (+ mean/rstd), q, k, v, the SDPA
    output, its fp32 logsumexp (one value per head) and its copy of the mask (T values), and the
    ReLU output (+ two dropout masks when its residual dropout is on); Llama keeps fp32
    copies of its RMSNorm inputs, the same attention tensors, and three MLP tensors (gate,
    SiLU(gate), up); BLOOM computes attention eagerly and keeps q, k, v, the fp32 softmax and its 16-bit copy
    (a*T values per token). On top come the inputs of trained linears (shared within a group) and,
    for LoRA, lora_A's input (a separate fp32 copy per adapted linear when the adapters, fp32 by
    PEFT's default, differ from the 16-bit activations) plus lora_A's r outputs.
    """
    s = m.shape
    h, f, a = s.h, s.ffn, s.heads
    ln = 4 if autocast else d  # autocast runs layer norms in fp32
    # SDPA keeps q, k, v, its output, an fp32 logsumexp per head and its own copy of the
    # (B, 1, T, T) mask (T values per token). With a mask, transformers repeats grouped-query k
    # and v to every head before SDPA, so those are kept at full width too.
    sdpa = (4 * h + T) * d + 4 * a
    if s.family == "opt":
        always = 2 * (h * ln + 2 * d) + sdpa + f * d
        if s.dropout > 0:
            # the two residual dropouts keep their masks: bool on a GPU (native_dropout), a
            # scaled noise tensor of the activations' dtype on the CPU
            always += 2 * h * (1 if device == "cuda" else d)
    elif s.family == "bloom":
        probs = a * T * 4 + (a * T * d if d != 4 else 0)
        always = 2 * (h * ln + 2 * d) + 3 * h * d + probs + f * d
    else:
        always = 2 * (4 * h + 4) + sdpa + 3 * f * d
        if m.full_layers:
            always += 2 * h * d  # the normalised input, for the trained norm weight
    lora_bytes = d if autocast else 4
    cast = lora_bytes if (autocast or d != 4) else 0
    extra = 0.0
    known = {n for _, names, _ in _GROUPS.get(s.family, []) for n in names}
    for width, names, kept in _GROUPS.get(s.family, _GROUPS["llama"]):
        n = h if width == "h" else f
        adapted = [x for x in names if x in m.lora_modules]
        if m.lora_modules and not (m.lora_modules & known):
            adapted = list(names)  # "all-linear" on an unknown family
        if adapted and cast:
            extra += len(adapted) * n * cast
        elif (m.full_layers or adapted) and not kept:
            extra += n * d
        extra += len(adapted) * (m.spec.lora.r if m.spec.lora else 0) * lora_bytes
    return always + extra


def block_backward_bytes(m: ModelCount, d: int) -> float:
    """Per token, the gradients alive while one block runs its backward (~2 MLP-wide + 4 h-wide)."""
    s = m.shape
    return (2 * s.ffn + 4 * s.h) * d + (4 * s.ffn if m.lora_modules and d != 4 else 0)


def model_extra_saved_bytes(m: ModelCount, T: int, d: int) -> float:
    """Per token, what a trained model keeps outside its blocks: token/position ids, the SDPA mask
    (B, 1, T, T), the final norm's input and the head's input when the head is trained."""
    s = m.shape
    mask = 0 if s.eager_attention else T * d
    return 16 + mask + s.h * d + (s.out_dim * d if m.head_trained else 0)


def training_activation_bytes(
    m: ModelCount, B: int, T: int, d: int, autocast: bool = False, device: str = "cpu"
) -> int:
    """Activations of one forward + backward of B sequences of T tokens (0 for a frozen model).

    Without checkpointing the blocks from the lowest trained one up keep everything; with it
    every block keeps its input (transformers makes the embeddings require grad, so all L
    blocks take part) and one block at a time is recomputed during the backward pass.
    """
    if not m.trainable:
        return 0
    tokens = B * T
    block = block_saved_bytes(m, T, d, autocast, device)
    extra = model_extra_saved_bytes(m, T, d)
    backward = block_backward_bytes(m, d)
    if m.spec.checkpointing:
        return int(tokens * (m.shape.layers * m.shape.h * d + extra + block + backward))
    return int(tokens * (m.graph_layers * block + extra + backward))


def inference_bytes(m: ModelCount, B: int, T: int, d: int) -> int:
    """Working memory of a no-grad forward: the residual stream plus one block's temporaries."""
    s = m.shape
    per_token = (2 * s.ffn + 6 * s.h) * d
    if s.family == "llama":
        per_token += 2 * s.h * 4  # RMSNorm's fp32 copies
    if s.eager_attention:
        per_token += s.heads * T * (4 + 2 * d)
    if m.lora_modules and d != 4:
        per_token += s.ffn * 4  # LoRA's fp32 copy of the widest input
    return int(B * T * per_token)


class LogitsPeaks(NamedTuple):
    forward: int  # a no-grad forward's peak
    training: int  # a training forward + backward's peak
    kept: int  # what a training forward keeps for its backward


def logits_peaks(B: int, T: int, A: int, V: int, d: int) -> LogitsPeaks:
    """Peaks of the actor's logits and `token_logprobs` over the answer.

    Measured with resource/VmHWM on this CPU for fp32 and bf16 and A/T = 1/4, 1/2, 3/4 (within
    2%): X = B*T*V*d logits, U = B*A*V*4. No grad: X, the fp32 copy of the answer slice (16-bit
    logits only) and logsumexp's (x - max) temporary. Training: the same forward, then the
    backward holds logsumexp's saved input S (X for fp32: the slice keeps the whole tensor;
    U otherwise) plus three U-sized gradients/temporaries. The PPO engine asks for the logits
    of the A + 1 positions that predict answer tokens only (T = A + 1).
    """
    X, U = B * T * V * d, B * A * V * 4
    forward = X + (U if d != 4 else 0) + U
    saved = X if d == 4 else U
    return LogitsPeaks(forward, max(forward, saved + 3 * U), saved)


def sft_logits_bytes(m: ModelCount, B: int, T: int, d: int, device: str) -> int:
    """TRL's chunked LM head (trl/kernels/chunked_logprob.py): one (4096 tokens x 32768 vocab)
    tile of logits at a time, folded by a Triton kernel on a GPU and by torch ops on the CPU
    (~3 fp32 copies of the tile); its backward accumulates the hidden-state gradient (and the
    head's, when trained) in fp32 before casting it back."""
    N = B * T
    tile = min(N, TRL_TOKEN_CHUNK) * min(m.shape.vocab, TRL_VOCAB_CHUNK)
    head = m.shape.vocab * m.shape.out_dim * (4 + d) if m.head_trained else 0
    return tile * (d if device == "cuda" else d + 12) + N * m.shape.out_dim * (4 + d) + head
