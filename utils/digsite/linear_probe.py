"""`LinearProbe`: a trained linear classifier on the residual stream, W and b with what to do with them.

Its own module so that `digsite.solutions.ch06` (the chapter's exercise answers, whose
`train_probe` returns one) and `digsite.probes` (which imports those answers) do not import
each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["LinearProbe"]


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
