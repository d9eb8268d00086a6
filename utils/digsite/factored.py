"""A low-rank matrix kept as a product of two factors, `A @ B`, never formed unless asked.

Circuits read from the weights are long products: the full OV circuit of a head is
`W_E @ W_V @ W_O @ W_U`, a d_vocab x d_vocab matrix (50,257² numbers for GPT-2, 10 GB) of
rank at most d_head. `FactoredMatrix(A, B)` holds the two factors, A (..., m, r) and
B (..., r, n), and answers the questions the circuits chapter asks through the small r x r
core instead: its SVD, its eigenvalues, its Frobenius norm, products with other matrices.
Leading dimensions batch, as in torch: `FactoredMatrix(W_V, W_O)` with W_V (layers, heads,
d_model, d_head) is every head's OV matrix at once, and `ov[1, 3]` is one of them.

Only `.full()` (and indexing a single row or column) forms entries; index rows first
(`circuit[:1000].full()`) to read a big matrix in pieces.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

__all__ = ["FactoredMatrix"]

Index = Union[int, slice, Tensor, list]


class FactoredMatrix:
    """The matrix A @ B of shape (..., m, n), stored as A (..., m, r) and B (..., r, n).

    Leading (batch) dimensions of A and B broadcast against each other. Products with tensors
    and other factored matrices stay factored (`@`, in either order), `.T` swaps the factors,
    and `svd`, `eigenvalues` and `norm` work on r x r matrices.
    """

    def __init__(self, A: Tensor, B: Tensor):
        if not (isinstance(A, Tensor) and isinstance(B, Tensor)):
            raise TypeError(f"FactoredMatrix takes two tensors, not {type(A).__name__} and {type(B).__name__}")
        if A.ndim < 2 or B.ndim < 2:
            raise ValueError(
                f"both factors need at least 2 dimensions (..., m, r) and (..., r, n); got shapes "
                f"{tuple(A.shape)} and {tuple(B.shape)} (use x[:, None] or x[None] to make a vector a matrix)"
            )
        if A.shape[-1] != B.shape[-2]:
            raise ValueError(
                f"cannot multiply A {tuple(A.shape)} by B {tuple(B.shape)}: A's last dimension "
                f"({A.shape[-1]}) must equal B's second-to-last ({B.shape[-2]})"
            )
        try:
            batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        except RuntimeError as error:
            raise ValueError(
                f"the leading dimensions of A {tuple(A.shape)} and B {tuple(B.shape)} do not broadcast"
            ) from error
        self.A = A.expand(*batch, *A.shape[-2:])
        self.B = B.expand(*batch, *B.shape[-2:])

    # --- sizes -------------------------------------------------------------------------------

    @property
    def shape(self) -> torch.Size:
        """(..., m, n): the shape of the matrix the factors stand for."""
        return torch.Size((*self.A.shape[:-1], self.B.shape[-1]))

    @property
    def ndim(self) -> int:
        return self.A.ndim

    @property
    def rank_bound(self) -> int:
        """r, the inner dimension: the rank is at most this."""
        return self.A.shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.A.dtype

    @property
    def device(self) -> torch.device:
        return self.A.device

    def __repr__(self) -> str:
        return f"FactoredMatrix(shape={tuple(self.shape)}, inner={self.rank_bound})"

    # --- algebra -----------------------------------------------------------------------------

    def full(self) -> Tensor:
        """The matrix itself, (..., m, n). The only method that forms all m x n entries."""
        return self.A @ self.B

    @property
    def T(self) -> FactoredMatrix:
        """The transpose, (..., n, m): B^T @ A^T, still factored."""
        return FactoredMatrix(self.B.transpose(-1, -2), self.A.transpose(-1, -2))

    def __matmul__(self, other: Union[Tensor, FactoredMatrix]) -> FactoredMatrix:
        """(A @ B) @ other, factored. other: a tensor (..., n, k) or a FactoredMatrix (..., n, k)."""
        if isinstance(other, FactoredMatrix):
            self._check_inner(self.shape[-1], other.shape[-2], other.shape)
            middle = self.B @ other.A  # (..., r, s): small
            if self.rank_bound <= other.rank_bound:
                return FactoredMatrix(self.A, middle @ other.B)
            return FactoredMatrix(self.A @ middle, other.B)
        if isinstance(other, Tensor):
            if other.ndim < 2:
                raise ValueError(f"multiply by a matrix (..., {self.shape[-1]}, k), not a {other.ndim}-d tensor")
            self._check_inner(self.shape[-1], other.shape[-2], other.shape)
            return FactoredMatrix(self.A, self.B @ other)
        return NotImplemented

    def __rmatmul__(self, other: Tensor) -> FactoredMatrix:
        """other @ (A @ B), factored. other: a tensor (..., k, m)."""
        if isinstance(other, Tensor):
            if other.ndim < 2:
                raise ValueError(f"multiply by a matrix (..., k, {self.shape[-2]}), not a {other.ndim}-d tensor")
            self._check_inner(other.shape[-1], self.shape[-2], other.shape, left=True)
            return FactoredMatrix(other @ self.A, self.B)
        return NotImplemented

    def _check_inner(self, n: int, k: int, other_shape: torch.Size, left: bool = False) -> None:
        if n != k:
            order = (
                f"{tuple(other_shape)} @ {tuple(self.shape)}" if left else f"{tuple(self.shape)} @ {tuple(other_shape)}"
            )
            raise ValueError(f"shape mismatch in {order}: inner dimensions {n} and {k} differ")

    # --- what the core tells -----------------------------------------------------------------

    def svd(self) -> tuple[Tensor, Tensor, Tensor]:
        """Thin SVD from the factors: U (..., m, k), S (..., k), V (..., n, k) with A @ B = U diag(S) V^T.

        k = min(m, n, r). QR of A and of B^T reduce the problem to the small core R_A R_B^T,
        so the m x n matrix is never formed. Singular values come sorted, largest first.
        """
        Q_a, R_a = torch.linalg.qr(self.A)  # (..., m, p), (..., p, r)
        Q_b, R_b = torch.linalg.qr(self.B.transpose(-1, -2))  # (..., n, q), (..., q, r)
        U_core, S, Vh_core = torch.linalg.svd(R_a @ R_b.transpose(-1, -2), full_matrices=False)
        return Q_a @ U_core, S, Q_b @ Vh_core.transpose(-1, -2)

    @property
    def S(self) -> Tensor:
        """Singular values (..., k), largest first."""
        return self.svd()[1]

    def eigenvalues(self) -> Tensor:
        """Eigenvalues (..., r), complex, of the square matrix A @ B (m == n), from the r x r matrix B @ A.

        A @ B and B @ A have the same non-zero eigenvalues; when r > m the extra ones are 0.
        """
        if self.shape[-1] != self.shape[-2]:
            raise ValueError(f"eigenvalues need a square matrix; this one is {tuple(self.shape[-2:])}")
        return torch.linalg.eigvals(self.B @ self.A)

    def norm(self) -> Tensor:
        """Frobenius norm (...,): sqrt(trace((A^T A)(B B^T))), from two r x r matrices."""
        gram_a = self.A.transpose(-1, -2) @ self.A
        gram_b = self.B @ self.B.transpose(-1, -2)
        return (gram_a * gram_b).sum(dim=(-1, -2)).clamp(min=0).sqrt()

    # --- indexing ----------------------------------------------------------------------------

    def __getitem__(self, key: Union[Index, tuple]) -> Union[FactoredMatrix, Tensor]:
        """Index like the full tensor: leading dims first, then rows, then columns.

        Slices, lists and index tensors keep the result factored (`fm[:100]` is the first 100
        rows); an integer on the row or column axis picks one row or column and returns it as
        a dense tensor. Ellipsis and None are not supported.
        """
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in key):
            raise IndexError("FactoredMatrix indexing takes ints, slices, lists and index tensors; not ... or None")
        n_batch = self.ndim - 2
        if len(key) > self.ndim:
            raise IndexError(f"too many indices ({len(key)}) for a FactoredMatrix of shape {tuple(self.shape)}")
        batch_key, rest = key[:n_batch], key[n_batch:]
        if any(not isinstance(k, (int, slice)) for k in batch_key):  # advanced indexing would move dims
            raise IndexError("index the leading (batch) dimensions with ints or slices")
        A, B = self.A[batch_key], self.B[batch_key]
        rows = rest[0] if len(rest) > 0 else slice(None)
        cols = rest[1] if len(rest) > 1 else slice(None)
        A = A[..., rows, :] if not isinstance(rows, int) else A[..., rows, :].unsqueeze(-2)
        B = B[..., :, cols] if not isinstance(cols, int) else B[..., :, cols].unsqueeze(-1)
        if isinstance(rows, int) or isinstance(cols, int):
            dense = A @ B
            if isinstance(rows, int):
                dense = dense.squeeze(-2)
            if isinstance(cols, int):
                dense = dense.squeeze(-1)
            return dense
        return FactoredMatrix(A, B)
