"""Checks for chapter 0, orientation: one tiny exercise to show how checks work."""

from __future__ import annotations

import torch

from .core import assert_close, exercise_check, run_learner


def softmax_reference(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, stable for large inputs. x: (..., n) -> (..., n)."""
    shifted = x - x.max(dim=-1, keepdim=True).values
    exps = shifted.exp()
    return exps / exps.sum(dim=-1, keepdim=True)


def _softmax_wrong_dim(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x) / torch.exp(x).sum(dim=0, keepdim=True)


def _softmax_unstable(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x) / torch.exp(x).sum(dim=-1, keepdim=True)


def _softmax_no_exp(x: torch.Tensor) -> torch.Tensor:
    return x / x.sum(dim=-1, keepdim=True)


@exercise_check(
    reference=softmax_reference,
    wrong_answers={
        "normalises over the first dimension": _softmax_wrong_dim,
        "overflows on large logits (no max subtraction)": _softmax_unstable,
        "forgets the exponential": _softmax_no_exp,
    },
)
def check_softmax(softmax) -> None:
    """Your `softmax(x)` must match the reference on random and on very large logits."""
    gen = torch.Generator().manual_seed(0)
    cases = {
        "random logits (4, 7)": torch.randn(4, 7, generator=gen),
        "a batch of shape (2, 3, 5)": torch.randn(2, 3, 5, generator=gen) * 3,
        "large logits (values near 1000)": 1000 + torch.randn(3, 6, generator=gen),
    }
    for label, x in cases.items():
        assert_close(run_learner(softmax, x.clone()), softmax_reference(x), what=f"softmax on {label}")
