"""`LinearProbe`: a trained linear classifier on the residual stream, W and b with what to do with them;
`CCSProbe`: an unsupervised probe on contrast pairs, with the normalisation it was trained under.

Its own module so that `digsite.solutions.ch06` (the chapter's exercise answers, whose
`train_probe` returns one) and `digsite.probes` (which imports those answers) do not import
each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LinearProbe", "CCSProbe"]


@dataclass
class LinearProbe:
    """A linear classifier on the residual stream: logits = X @ W + b.

    W: (d_model, n_classes), b: (n_classes,).
    """

    W: Tensor
    b: Tensor

    def logits(self, X: Tensor) -> Tensor:
        """X: (n, d_model) -> (n, n_classes)."""
        return X @ self.W + self.b

    def predict(self, X: Tensor) -> Tensor:
        """X: (n, d_model) -> (n,) predicted class."""
        return self.logits(X).argmax(dim=-1)

    def accuracy(self, X: Tensor, y: Tensor) -> float:
        """Fraction of rows of X (n, d_model) classified as y (n,)."""
        return (self.predict(X) == y).float().mean().item()

    def direction(self, cls: int = 1) -> Tensor:
        """The direction (d_model,) that raises class `cls` against the others: W[:, cls] - mean over classes.

        For a two-class probe, direction(1) points from class 0 to class 1.
        """
        return self.W[:, cls] - self.W.mean(dim=1)


@dataclass
class CCSProbe:
    """A contrast-consistent-search probe (Burns et al., 2022) on contrast pairs.

    Each member of a pair is normalised with the mean and standard deviation of its own side
    (`mean_pos`, `std_pos` for the first members, `mean_neg`, `std_neg` for the second; each
    (d_model,)), then p = sigmoid(x_normalised @ w + b), w: (d_model,), b: ().
    """

    w: Tensor
    b: Tensor
    mean_pos: Tensor
    std_pos: Tensor
    mean_neg: Tensor
    std_neg: Tensor

    def probabilities(self, x_pos: Tensor, x_neg: Tensor) -> tuple[Tensor, Tensor]:
        """(p_pos, p_neg), each (n,): the probe's probability that each member is true. x_pos, x_neg: (n, d_model)."""
        p_pos = torch.sigmoid((x_pos - self.mean_pos) / self.std_pos @ self.w + self.b)
        p_neg = torch.sigmoid((x_neg - self.mean_neg) / self.std_neg @ self.w + self.b)
        return p_pos, p_neg

    def credence(self, x_pos: Tensor, x_neg: Tensor) -> Tensor:
        """(n,) the averaged belief that the first member of each pair is the true one: (p_pos + 1 - p_neg) / 2."""
        p_pos, p_neg = self.probabilities(x_pos, x_neg)
        return (p_pos + 1 - p_neg) / 2

    def accuracy(self, x_pos: Tensor, x_neg: Tensor, y: Tensor) -> float:
        """Fraction of pairs where credence > 0.5 matches y (n,), 1 when the first member is true.

        No labels went into training, so the sign is arbitrary: 1 - accuracy is as good a result.
        """
        return ((self.credence(x_pos, x_neg) > 0.5).long() == y).float().mean().item()
