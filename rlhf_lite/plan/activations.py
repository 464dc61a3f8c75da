"""Bytes autograd saves per block and the logits' peaks, counted tensor by tensor."""

from __future__ import annotations

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
    """Bytes per token one trained block keeps for its backward pass (no checkpointing); d: bytes
    of an activation. Besides the norms' inputs and the attention and MLP tensors of each family
    come the inputs of trained linears (shared within a group) and, for LoRA, lora_A's input (an
    fp32 copy per adapted linear when the activations are 16-bit) and its r outputs."""
    s = m.shape
    h, f, a = s.h, s.ffn, s.heads
    ln = 4 if autocast else d  # autocast runs layer norms in fp32
    # SDPA keeps q, k, v, its output, an fp32 logsumexp per head and its copy of the mask (T values
    # per token); with a mask, transformers repeats grouped-query k and v to every head first.
    sdpa = (4 * h + T) * d + 4 * a
    if s.family == "opt":  # two LayerNorm inputs (+ mean/rstd), attention, the ReLU output
        always = 2 * (h * ln + 2 * d) + sdpa + f * d
        if s.dropout > 0:  # residual dropout masks: bool on a GPU, of the activations' dtype on the CPU
            always += 2 * h * (1 if device == "cuda" else d)
    elif s.family == "bloom":  # eager attention keeps the fp32 softmax and its 16-bit copy
        probs = a * T * 4 + (a * T * d if d != 4 else 0)
        always = 2 * (h * ln + 2 * d) + 3 * h * d + probs + f * d
    else:  # Llama: fp32 copies of the two RMSNorm inputs (+ rstd), attention, gate, SiLU(gate), up
        always = 2 * (4 * h + 4) + sdpa + 3 * f * d
        if m.full_layers:
            always += 2 * h * d  # the normalised input, for the trained norm weight
    lora_bytes = d if autocast else 4
    cast = lora_bytes if (autocast or d != 4) else 0
    extra = 0.0
    known = {n for _, names, _ in _GROUPS[s.family] for n in names}
    for width, names, kept in _GROUPS[s.family]:
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


def training_activation_bytes(
    m: ModelCount, B: int, T: int, d: int, autocast: bool = False, device: str = "cpu"
) -> int:
    """Activations of one forward + backward of B sequences of T tokens (0 for a frozen model).
    Without checkpointing the blocks from the lowest trained one up keep everything; with it all
    L blocks keep their input (the embeddings require grad) and one block at a time is recomputed."""
    if not m.trainable:
        return 0
    s, tokens = m.shape, B * T
    block = block_saved_bytes(m, T, d, autocast, device)
    # outside the blocks: ids, the SDPA mask, the final norm's input and a trained head's input
    extra = 16 + (0 if s.eager_attention else T * d) + s.h * d + (s.out_dim * d if m.head_trained else 0)
    # the gradients alive while one block runs its backward
    backward = (2 * s.ffn + 4 * s.h) * d + (4 * s.ffn if m.lora_modules and d != 4 else 0)
    if m.spec.checkpointing:
        return int(tokens * (s.layers * s.h * d + extra + block + backward))
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


def logits_peaks(B: int, T: int, A: int, V: int, d: int) -> tuple[int, int, int]:
    """(no-grad forward's peak, training forward + backward's peak, what a training forward keeps)
    of the actor's logits and `token_logprobs` over the answer, as measured (VmHWM, within 2%) on
    this CPU: X = B*T*V*d logits, U = B*A*V*4. No grad: X, the fp32 copy of the answer slice (16-bit
    logits only) and logsumexp's temporary. Training: then logsumexp's saved input (X for fp32,
    whose slice keeps the whole tensor; U otherwise) and three U-sized temporaries."""
    X, U = B * T * V * d, B * A * V * 4
    forward = X + (U if d != 4 else 0) + U
    saved = X if d == 4 else U
    return forward, max(forward, saved + 3 * U), saved
