"""Checks for chapter 0, orientation: one tiny exercise to show how checks work."""

from __future__ import annotations

import torch

from ..solutions.ch00 import softmax
from .core import exercise_check, verify


def _softmax_wrong_dim(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x) / torch.exp(x).sum(dim=0, keepdim=True)


def _softmax_unstable(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x) / torch.exp(x).sum(dim=-1, keepdim=True)


def _softmax_no_exp(x: torch.Tensor) -> torch.Tensor:
    return x / x.sum(dim=-1, keepdim=True)


@exercise_check(
    reference=softmax,
    wrong_answers={
        "Your function normalises over the first dimension: each row should sum to 1 along the last one.": _softmax_wrong_dim,
        "Large logits overflow to inf and then nan. Subtracting a constant from a row does not change its softmax.": _softmax_unstable,
        "Your function divides the logits themselves by their sum: the exponential is missing.": _softmax_no_exp,
    },
)
def check_softmax(fn) -> None:
    """Your `softmax(x)` must match the reference on random, batched and very large logits."""
    gen = torch.Generator().manual_seed(0)
    verify(fn, torch.randn(1, 7, generator=gen), what="softmax on random logits (1, 7)")
    verify(fn, torch.randn(2, 3, 5, generator=gen) * 3, what="softmax on a batch of shape (2, 3, 5)")
    verify(fn, 1000 + torch.randn(3, 6, generator=gen), what="softmax on large logits (values near 1000)")
