"""digsite.notebook.setup: seeded, idempotent, offline-safe figures."""

import torch

from digsite.notebook import pick_device, setup


def test_setup_is_idempotent_and_seeds():
    setup(seed=3)
    a = torch.rand(3)
    device = setup(seed=3)
    assert torch.equal(a, torch.rand(3))
    assert device == setup(seed=3)


def test_circuitsvis_renders_inline_after_setup():
    import circuitsvis as cv

    setup()
    html = cv.attention.attention_patterns(tokens=["a", "b"], attention=torch.ones(1, 2, 2) / 2)._repr_html_()
    assert "unpkg.com" not in html and "CircuitsVis.render" in html


def test_explicit_device_wins():
    assert pick_device("cpu") == torch.device("cpu")
