"""digsite.factored.FactoredMatrix against dense computation on small random matrices."""

import pytest
import torch

from digsite.factored import FactoredMatrix


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture
def fm() -> FactoredMatrix:
    return FactoredMatrix(rand(7, 3, seed=1), rand(3, 5, seed=2))


def test_shape_full_and_transpose(fm):
    dense = rand(7, 3, seed=1) @ rand(3, 5, seed=2)
    assert fm.shape == (7, 5) and fm.rank_bound == 3 and fm.ndim == 2
    torch.testing.assert_close(fm.full(), dense)
    assert fm.T.shape == (5, 7)
    torch.testing.assert_close(fm.T.full(), dense.T)
    assert "shape=(7, 5)" in repr(fm)


def test_products_with_tensors_stay_factored(fm):
    dense = fm.full()
    right, left = rand(5, 4, seed=3), rand(6, 7, seed=4)
    assert isinstance(fm @ right, FactoredMatrix) and isinstance(left @ fm, FactoredMatrix)
    torch.testing.assert_close((fm @ right).full(), dense @ right)
    torch.testing.assert_close((left @ fm).full(), left @ dense)


@pytest.mark.parametrize("inner", [2, 6])
def test_products_of_factored_matrices(fm, inner):
    other = FactoredMatrix(rand(5, inner, seed=5), rand(inner, 4, seed=6))
    product = fm @ other
    assert isinstance(product, FactoredMatrix)
    assert product.rank_bound == min(fm.rank_bound, inner)
    torch.testing.assert_close(product.full(), fm.full() @ other.full())


def test_svd_matches_dense_and_reconstructs(fm):
    U, S, V = fm.svd()
    assert U.shape == (7, 3) and S.shape == (3,) and V.shape == (5, 3)
    torch.testing.assert_close(S, torch.linalg.svdvals(fm.full())[:3])
    torch.testing.assert_close(U @ torch.diag(S) @ V.T, fm.full())
    torch.testing.assert_close(U.T @ U, torch.eye(3, dtype=U.dtype))
    torch.testing.assert_close(fm.S, S)


def test_svd_when_inner_dimension_exceeds_rows():
    fm = FactoredMatrix(rand(2, 5, seed=7), rand(5, 4, seed=8))
    U, S, V = fm.svd()
    assert S.shape == (2,)
    torch.testing.assert_close(U @ torch.diag(S) @ V.T, fm.full())


def test_eigenvalues_are_the_non_zero_eigenvalues_of_the_full_matrix():
    fm = FactoredMatrix(rand(6, 2, seed=9), rand(2, 6, seed=10))
    ours = fm.eigenvalues()
    assert ours.shape == (2,) and ours.is_complex()
    dense = torch.linalg.eigvals(fm.full())
    big = dense[dense.abs() > 1e-8]
    key = lambda z: (round(z.real.item(), 6), round(z.imag.item(), 6))  # noqa: E731
    assert sorted(map(key, ours)) == sorted(map(key, big))
    with pytest.raises(ValueError, match="square"):
        FactoredMatrix(rand(6, 2), rand(2, 5)).eigenvalues()


def test_frobenius_norm(fm):
    torch.testing.assert_close(fm.norm(), torch.linalg.matrix_norm(fm.full()))


def test_batched_factors_broadcast_and_index():
    A, B = rand(2, 3, 6, 2, seed=11), rand(3, 2, 6, seed=12)  # B broadcasts over the first dim
    fm = FactoredMatrix(A, B)
    dense = A @ B
    assert fm.shape == (2, 3, 6, 6)
    torch.testing.assert_close(fm.norm(), torch.linalg.matrix_norm(dense))
    torch.testing.assert_close(fm.S, torch.linalg.svdvals(dense)[..., :2])
    one = fm[1, 2]
    assert isinstance(one, FactoredMatrix) and one.shape == (6, 6)
    torch.testing.assert_close(one.full(), dense[1, 2])
    torch.testing.assert_close((fm @ fm).full(), dense @ dense)
    torch.testing.assert_close(fm.T.full(), dense.transpose(-1, -2))


def test_indexing_rows_and_columns(fm):
    dense = fm.full()
    torch.testing.assert_close(fm[2:5].full(), dense[2:5])
    torch.testing.assert_close(fm[[0, 6]].full(), dense[[0, 6]])
    torch.testing.assert_close(fm[:, 1:3].full(), dense[:, 1:3])
    torch.testing.assert_close(fm[3], dense[3])
    torch.testing.assert_close(fm[:, 4], dense[:, 4])
    torch.testing.assert_close(fm[3, 4], dense[3, 4])
    torch.testing.assert_close(fm[-1], dense[-1])
    torch.testing.assert_close(fm[:, -2], dense[:, -2])
    torch.testing.assert_close(fm[-3:].full(), dense[-3:])
    with pytest.raises(IndexError, match="too many"):
        fm[0, 0, 0]
    with pytest.raises(IndexError):
        fm[..., 0]


def test_shape_mismatches_are_named():
    with pytest.raises(ValueError, match="A's last dimension"):
        FactoredMatrix(rand(4, 3), rand(2, 4))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        FactoredMatrix(rand(4), rand(4, 2))
    with pytest.raises(TypeError):
        FactoredMatrix([[1.0]], rand(1, 1))
    with pytest.raises(ValueError, match="do not broadcast"):
        FactoredMatrix(rand(2, 4, 3), rand(3, 3, 4))
    fm = FactoredMatrix(rand(4, 3), rand(3, 5))
    with pytest.raises(ValueError, match="inner dimensions 5 and 4"):
        fm @ rand(4, 2)
    with pytest.raises(ValueError, match="inner dimensions 2 and 4"):
        rand(3, 2) @ fm
    with pytest.raises(ValueError, match="inner dimensions"):
        fm @ fm
    with pytest.raises(ValueError, match="not a 1-d tensor"):
        fm @ rand(5)
