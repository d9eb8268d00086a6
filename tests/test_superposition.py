"""Toy models of superposition: shapes, the known geometry, and the phase diagram's codes."""

import torch

from digsite.superposition import (
    ToyModel,
    classify_two_features,
    feature_dimensionality,
    generate_batch,
    plot_features_2d,
    toy_forward,
    train_toy_model,
)


def test_generate_batch_is_sparse_and_seeded():
    prob = torch.tensor([[0.1] * 50, [0.9] * 50])
    a = generate_batch(400, prob, torch.Generator().manual_seed(0))
    b = generate_batch(400, prob, torch.Generator().manual_seed(0))
    assert a.shape == (400, 2, 50) and torch.equal(a, b)
    density = (a > 0).float().mean(dim=(0, 2))
    assert abs(density[0] - 0.1) < 0.02 and abs(density[1] - 0.9) < 0.02
    assert a.min() >= 0 and a.max() <= 1


def test_toy_forward_matches_the_formula_per_instance():
    g = torch.Generator().manual_seed(0)
    W, b, x = torch.randn(3, 2, 5, generator=g), torch.randn(3, 5, generator=g), torch.rand(4, 3, 5, generator=g)
    out = toy_forward(W, b, x)
    for i in range(3):
        assert torch.allclose(out[:, i], torch.relu(x[:, i] @ W[i].T @ W[i] + b[i]), atol=1e-5)


def test_feature_dimensionality_of_known_geometries():
    W = torch.tensor([[[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]])  # antipodal pair, dedicated, ignored
    D = feature_dimensionality(W)
    assert torch.allclose(D, torch.tensor([[0.5, 0.5, 1.0, 0.0]]), atol=1e-5)


def test_dense_features_get_dedicated_dimensions_and_sparse_ones_superpose():
    prob = torch.tensor([[1.0], [0.03]])  # dense vs very sparse, 5 features in 2 dimensions
    model = ToyModel(2, 5, 2, prob, 0.9 ** torch.arange(5), seed=0)
    history = train_toy_model(model, steps=1500, progress=False)
    assert history[-100:].mean() < history[:100].mean()
    norms = model.W.detach().norm(dim=1)  # (inst, feat)
    assert (norms[0] > 0.5).sum() == 2  # dense: only the two most important features are kept
    assert (norms[1] > 0.5).sum() == 5  # sparse: all five, in superposition (a pentagon)
    assert feature_dimensionality(model.W.detach())[1].sum() < 2.2  # five features share two dimensions


def test_classify_two_features():
    W = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, -1.0]], [[0.1, -0.2]]])
    assert classify_two_features(W).tolist() == [
        0,
        1,
        2,
        3,
    ]  # the last represents neither feature, not "only feature 1"


def test_plot_features_2d_has_one_arrow_per_feature():
    fig = plot_features_2d(torch.randn(3, 2, 5), torch.ones(5), titles=["a", "b", "c"])
    assert len(fig.data) == 15


def test_paired_features_are_correlated_or_anti_correlated_with_the_right_density():
    from digsite.superposition import generate_paired_batch

    prob = torch.full((3, 6), 0.2)
    for correlated in (True, False):
        x = generate_paired_batch(20000, prob, torch.Generator().manual_seed(0), correlated=correlated)
        assert x.shape == (20000, 3, 6) and x.min() >= 0 and x.max() <= 1
        on = x > 0
        assert ((on.float().mean(dim=(0, 1)) - 0.2).abs() < 0.01).all()
        both = (on[..., 0::2] & on[..., 1::2]).float().mean()
        assert abs(both - 0.2) < 0.01 if correlated else both == 0
