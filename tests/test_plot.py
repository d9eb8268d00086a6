"""digsite.plot: figures from tensors, offline-rendering circuitsvis, clear errors on bad shapes."""

import pytest
import torch

from digsite import plot
from digsite.notebook import online
from digsite.stand_ins import STAND_IN_ENV


def test_imshow_keeps_repeated_labels_and_rejects_wrong_rank():
    fig = plot.imshow(torch.randn(2, 3), x=["a", "b", "a"], y=["r0", "r1"])
    assert fig.data[0].z.shape == (2, 3) and fig.layout.xaxis.type == "category"
    # No labels, no category axis: plotly.js cannot draw a heatmap on an unlabelled category axis.
    assert plot.imshow(torch.randn(2, 3)).layout.xaxis.type != "category"
    with pytest.raises(ValueError, match="2-D"):
        plot.imshow(torch.randn(2, 3, 4))


def test_line_and_scatter():
    fig = plot.line({"a": torch.arange(3.0), "b": torch.ones(3)}, title="t")
    assert len(fig.data) == 2 and list(fig.data[1].y) == [1, 1, 1]
    fig = plot.scatter(torch.arange(3.0), torch.arange(3.0), diagonal=True)
    assert len(fig.data) == 2


def test_attention_heads_renders_inline_and_checks_tokens():
    html = plot.attention_heads(torch.ones(2, 3, 3) / 3, ["a", "b", "c"])._repr_html_()
    assert "unpkg.com" not in html and "AttentionHeads" in html
    with pytest.raises(ValueError, match="3 key positions but 2 tokens"):
        plot.attention_heads(torch.ones(2, 3, 3), ["a", "b"])


def test_online_is_false_when_hub_offline(monkeypatch):
    monkeypatch.delenv(STAND_IN_ENV, raising=False)  # the suite's stand-in switch (set when notebooks run)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert online() is False


def test_histogram_without_pandas():
    fig = plot.histogram(torch.tensor([1.0, 2.0, 2.0]), nbins=2, xlabel="x")
    assert list(fig.data[0].x) == [1.0, 2.0, 2.0] and fig.layout.xaxis.title.text == "x"
