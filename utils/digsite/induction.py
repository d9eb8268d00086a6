"""Detectors for the first circuits: previous-token, duplicate-token and induction heads.

Everything here works on a `HookedModel` (see `digsite.hooks`) and on sequences of
repeated random tokens, `[bos, seg, seg]` with `seg` of length `seg_len`
(`digsite.organisms.data.repeated_tokens`). Positions 1..seg_len hold the first
repeat, positions seg_len+1..2*seg_len the second.

- scores per head: `previous_token_score`, `induction_score`, `duplicate_token_score`,
  and `head_scores` to compute one of them for every head of a model;
- next-token loss per position: `per_token_loss`;
- head ablation: `head_ablation_hook`, `ablation_hooks`, `mean_z`, `ablated_loss`;
- K-composition between heads: `composition_score`, `k_composition_scores`.

The interactive viewer of every head's pattern is `digsite.widgets.attention_explorer`.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .hooks import Hook, HookedModel

__all__ = [
    "previous_token_score",
    "induction_score",
    "duplicate_token_score",
    "head_scores",
    "per_token_loss",
    "head_ablation_hook",
    "ablation_hooks",
    "mean_z",
    "ablated_loss",
    "composition_score",
    "k_composition_scores",
]

Head = tuple[int, int]  # (layer, head)


# --- scores per head ----------------------------------------------------------------------


def previous_token_score(pattern: Tensor) -> Tensor:
    """Mean attention from each position to the one just before it.

    pattern: (batch, head, q_pos, k_pos), rows summing to 1. Returns (head,): the mean over
    the batch and over query positions q >= 1 of pattern[:, :, q, q - 1].
    """
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _second_repeat(pattern: Tensor, seg_len: int) -> Tensor:
    """Query positions of the second repeat, seg_len+1 .. 2*seg_len: (n,) long tensor."""
    if pattern.shape[-2] < 2 * seg_len + 1:
        raise ValueError(f"pattern has {pattern.shape[-2]} positions; [bos, seg, seg] needs {2 * seg_len + 1}")
    return torch.arange(seg_len + 1, 2 * seg_len + 1, device=pattern.device)


def induction_score(pattern: Tensor, seg_len: int) -> Tensor:
    """Mean attention from the second repeat to the token *after* the previous occurrence.

    pattern: (batch, head, q_pos, k_pos) on `[bos, seg, seg]`. For a query q in the second
    repeat (q = seg_len+1 .. 2*seg_len) the same token sat at q - seg_len, and the token that
    followed it at q - seg_len + 1. Returns (head,): the mean of pattern[:, :, q, q - seg_len + 1].
    """
    q = _second_repeat(pattern, seg_len)
    return pattern[:, :, q, q - seg_len + 1].mean(dim=(0, -1))


def duplicate_token_score(pattern: Tensor, seg_len: int) -> Tensor:
    """Mean attention from the second repeat to the previous occurrence of the same token.

    pattern: (batch, head, q_pos, k_pos) on `[bos, seg, seg]`. Returns (head,): the mean of
    pattern[:, :, q, q - seg_len] over queries q in the second repeat.
    """
    q = _second_repeat(pattern, seg_len)
    return pattern[:, :, q, q - seg_len].mean(dim=(0, -1))


def head_scores(
    model: HookedModel,
    tokens: Tensor,
    score: Callable[[Tensor], Tensor],
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
) -> Tensor:
    """One score per head of every layer: (n_layers, n_heads).

    tokens: (batch, pos). score maps one layer's pattern (batch, head, q, k) to (head,), e.g.
    `previous_token_score` or `partial(induction_score, seg_len=10)`. Extra `fwd_hooks` (an
    ablation, say) are active while the patterns are recorded.
    """
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    store: dict[str, Tensor] = {}

    def save(pattern: Tensor, hook: Hook) -> None:
        store[hook.name] = pattern.detach()

    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[*fwd_hooks, *((n, save) for n in names)])
    return torch.stack([score(store[n]) for n in names])


# --- loss -----------------------------------------------------------------------------------


def per_token_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Next-token cross-entropy at each position.

    logits: (batch, pos, d_vocab), tokens: (batch, pos). Returns (batch, pos - 1): entry t is
    -log p(tokens[:, t + 1] | tokens[:, :t + 1]), the loss of the prediction made at position t.
    """
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)


# --- ablation -------------------------------------------------------------------------------


def head_ablation_hook(z: Tensor, hook: Hook, head: int, means: Tensor | None = None) -> Tensor:
    """A hook on `blocks.{l}.attn.hook_z` that knocks out one head.

    z: (batch, pos, head, d_head), the heads' outputs before the output projection. Returns
    a copy with head `head` replaced by zeros (zero-ablation) or, when `means` is given, by
    means[..., head, :] (mean-ablation; means of shape (pos, head, d_head) or (head, d_head)).
    """
    z = z.clone()
    z[:, :, head] = 0.0 if means is None else means[..., head, :].to(z.dtype)
    return z


def mean_z(model: HookedModel, tokens: Tensor) -> dict[int, Tensor]:
    """Each layer's hook_z averaged over the batch: layer -> (pos, head, d_head), for mean-ablation."""
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    return {layer: cache[name].mean(0) for layer, name in enumerate(names)}


def ablation_hooks(heads: Sequence[Head], means: dict[int, Tensor] | None = None) -> list[tuple[str, Callable]]:
    """fwd_hooks that ablate each (layer, head) in `heads`: zero-ablation, or mean-ablation with `means`."""
    return [
        (
            f"blocks.{layer}.attn.hook_z",
            partial(head_ablation_hook, head=head, means=None if means is None else means[layer]),
        )
        for layer, head in heads
    ]


def ablated_loss(model: HookedModel, tokens: Tensor, heads: Sequence[Head] = (), mode: str = "zero") -> Tensor:
    """Per-token loss (batch, pos - 1) with the given heads ablated ("zero" or "mean"; none: clean)."""
    if mode not in ("zero", "mean"):
        raise ValueError(f"mode must be 'zero' or 'mean', not {mode!r}")
    means = mean_z(model, tokens) if mode == "mean" and heads else None
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=ablation_hooks(heads, means))
    return per_token_loss(logits, model.input_ids(tokens))


# --- composition ---------------------------------------------------------------------------


def composition_score(left: Tensor, right: Tensor) -> Tensor:
    """||left @ right||_F / (||left||_F ||right||_F): how much of `left`'s output `right` reads.

    left: (..., d_model, d_model), right: (..., d_model, d_model), broadcasting over leading dims.
    """
    num = torch.linalg.matrix_norm(left @ right)
    return num / (torch.linalg.matrix_norm(left) * torch.linalg.matrix_norm(right))


def k_composition_scores(model: HookedModel, src_layer: int, dst_layer: int) -> Tensor:
    """K-composition of every head of `src_layer` into every head of `dst_layer`: (n_src, n_dst).

    With row-vector weights, head h1 writes x @ W_OV^h1 and head h2 scores x_q @ W_QK^h2 @ x_k^T;
    when x_k carries h1's output the product is W_OV^h1 @ W_QK^h2^T, and the score is its
    Frobenius norm relative to the two norms. Raw weights: LayerNorm is ignored.
    """
    with torch.no_grad():
        W_OV = model.W_V[src_layer] @ model.W_O[src_layer]  # (n_src, d_model, d_model)
        W_QK = model.W_Q[dst_layer] @ model.W_K[dst_layer].transpose(-1, -2)  # (n_dst, d_model, d_model)
        return composition_score(W_OV[:, None], W_QK[None].transpose(-1, -2))
