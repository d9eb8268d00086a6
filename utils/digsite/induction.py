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
from torch import Tensor

from .hooks import Hook, HookedModel

# The course's answers are the one text of these functions (course/01_hooks.py, generated into
# digsite.solutions.ch01); the package re-exports them.
from .solutions.ch01 import head_ablation_hook, per_token_loss, previous_token_score
from .solutions.ch01 import induction_score as _course_induction_score

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


def _second_repeat(pattern: Tensor, seg_len: int) -> Tensor:
    """Query positions of the second repeat, seg_len+1 .. 2*seg_len: (n,) long tensor."""
    if pattern.shape[-2] < 2 * seg_len + 1:
        raise ValueError(f"pattern has {pattern.shape[-2]} positions; [bos, seg, seg] needs {2 * seg_len + 1}")
    return torch.arange(seg_len + 1, 2 * seg_len + 1, device=pattern.device)


def induction_score(pattern: Tensor, seg_len: int) -> Tensor:
    """Mean attention from the second repeat to the token *after* the previous occurrence: (head,).

    The course's answer (exercise 1.6), with a clear error when `pattern` is too short for `seg_len`.
    """
    _second_repeat(pattern, seg_len)
    return _course_induction_score(pattern, seg_len)


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


# --- ablation -------------------------------------------------------------------------------


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
