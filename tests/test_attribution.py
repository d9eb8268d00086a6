"""Attribution graphs: exactness, edges checked one by one, pruning, interventions, figures, bad input."""

from functools import lru_cache

import plotly.graph_objects as go
import pytest
import torch

from digsite.attribution import attribution_graph, exactness_error
from digsite.feature_contexts import FeatureContexts
from digsite.graph_plot import graph_figure, graph_svg, graph_text
from digsite.interventions import _replacement_target, actual_change, faithfulness, predicted_change
from digsite.pruning import influence_on, normalized_adjacency, prune
from digsite.replacement import frozen_forward
from digsite.transcoders import load_transcoders

IOI = "When Mary and John went to the store, John gave a drink to"
FACT = "a cat is an"


@lru_cache(maxsize=1)
def _setup():
    from digsite import load_model

    return load_model("toylang", device="cpu"), load_transcoders("toylang")


@lru_cache(maxsize=4)
def _graph(prompt: str, target):
    model, tc = _setup()
    return attribution_graph(model, tc, prompt, target)


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.model.modules())


@pytest.mark.parametrize("prompt,target", [(IOI, ("Mary", "John")), (FACT, "animal")])
def test_every_receiver_is_its_incoming_edges_plus_bias(prompt, target):
    g = _graph(prompt, target)
    assert g.n_features > 20
    scale = g.values.abs().max().item()
    assert exactness_error(g) < 1e-10 * max(1.0, scale)


@pytest.mark.parametrize("prompt,target", [(IOI, ("Mary", "John")), (FACT, "animal")])
def test_graph_reproduces_the_model(prompt, target):
    model, tc = _setup()
    g = _graph(prompt, target)
    logits = model(prompt)[0, -1].double()
    assert abs((logits @ g.target_weights).item() - g.values[-1].item()) < 1e-3
    _, cache = model.run_with_cache(prompt)
    from digsite.transcoders import mlp_input

    for l in range(g.n_layers):
        f = tc.encode(mlp_input(model, cache[f"blocks.{l}.hook_resid_mid"][0], l), l)
        rows = (g.features[:, 0] == l).nonzero()[:, 0]
        _, pos, idx = g.features[rows].T
        assert torch.allclose(g.values[rows].float(), f[pos, idx], atol=1e-4)
        f[0] = 0
        assert int((f > 0).sum()) == len(rows)


def test_each_edge_is_the_change_when_its_source_alone_is_removed():
    """Independent of the backward sweep: hold every other source fixed, remove one, read the receivers."""
    g = _graph(IOI, ("Mary", "John"))
    fm = g.frozen
    L, P = g.n_layers, g.n_pos
    d_tc = fm.W_enc.shape[-1]
    acts = [torch.zeros(P, d_tc, dtype=torch.float64) for _ in range(L)]
    for (l, p, i), a in zip(g.features.tolist(), g.activations):
        acts[l][p, i] = a
    errs = list(g.errors)

    def receivers(acts, errs, emb):
        pres, tgt = frozen_forward(fm, emb, acts, errs, g.target_weights)
        return torch.cat([torch.stack([pres[l][p, i] for l, p, i in g.features.tolist()]), tgt[g.target_pos, None]])

    base = receivers(acts, errs, g.embeddings)
    recv = torch.cat([torch.arange(g.n_features), torch.tensor([g.target_index])])
    gen = torch.Generator().manual_seed(0)
    sources = torch.randperm(g.n_features, generator=gen)[:6].tolist()
    for s in sources:  # features
        l, p, i = g.features[s].tolist()
        a2 = [a.clone() for a in acts]
        a2[l][p, i] = 0
        assert torch.allclose(base - receivers(a2, errs, g.embeddings), g.adjacency[recv, s], atol=1e-9)
    for l, p in [(0, 4), (2, P - 1)]:  # errors
        e2 = [e.clone() for e in errs]
        e2[l][p] = 0
        assert torch.allclose(
            base - receivers(acts, e2, g.embeddings), g.adjacency[recv, g.error_index(l, p)], atol=1e-9
        )
    emb = g.embeddings.clone()
    emb[2] = 0
    assert torch.allclose(base - receivers(acts, errs, emb), g.adjacency[recv, g.embedding_index(2)], atol=1e-9)


def test_edges_respect_layers_and_causality():
    g = _graph(IOI, ("Mary", "John"))
    nF = g.n_features
    lay, pos = g.features[:, 0], g.features[:, 1]
    A = g.adjacency[:nF, :nF]
    assert (A[lay[:, None] <= lay[None, :]] == 0).all()  # no edge from the same or a later layer
    assert (A[pos[:, None] < pos[None, :]] == 0).all()  # nor from a later position
    assert (g.adjacency[nF:-1] == 0).all()  # errors and embeddings receive nothing


def test_influence_is_the_sum_over_paths():
    A = torch.tensor([[0, 0, 0, 0], [2.0, 0, 0, 0], [1.0, -3.0, 0, 0], [0, 1.0, 1.0, 0]], dtype=torch.float64)
    An = normalized_adjacency(A)
    series = An + An @ An + An @ An @ An
    assert torch.allclose(influence_on(A, 3), series[3])
    assert torch.allclose(An.sum(1)[1:], torch.ones(3, dtype=torch.float64))


def test_pruning_keeps_the_most_influential_features():
    g = _graph(IOI, ("Mary", "John"))
    pg = prune(g, node_threshold=0.8)
    inf = pg.influence[: g.n_features]
    kept = pg.nodes[: g.n_features]
    assert 0 < kept.sum() < g.n_features and pg.nodes[g.target_index]
    assert inf[kept].min() >= inf[~kept].max() - 1e-12 or not prune(g, 0.8, 1.0).nodes[: g.n_features][~kept].any()
    loose, tight = prune(g, 0.95), prune(g, 0.5)
    assert tight.n_kept_features <= pg.n_kept_features <= loose.n_kept_features
    assert (pg.edges <= (g.adjacency != 0)).all()
    with pytest.raises(ValueError, match="fractions"):
        prune(g, node_threshold=1.5)


def test_interventions_agree_exactly_when_everything_is_frozen():
    model, tc = _setup()
    g = _graph(IOI, ("Mary", "John"))
    before = _hook_count(model)
    top = influence_on(g.adjacency, g.target_index)[: g.n_features].argsort(descending=True)[:4].tolist()
    for nodes, factor in [([top[0]], 0.0), (top, 0.0), (top[1:3], 2.0)]:
        pred = predicted_change(g, nodes, factor)
        act = actual_change(model, tc, g, nodes, factor, freeze="all")
        assert abs(pred - act) < 1e-3 * max(1.0, abs(pred)), (nodes, factor, pred, act)
    assert actual_change(model, tc, g, [], 0.0) == 0.0
    assert _hook_count(model) == before


def test_unedited_replacement_is_the_model():

    model, tc = _setup()
    g = _graph(FACT, "animal")
    for freeze in ("none", "patterns", "norms", "patterns+norms", "all"):
        assert abs(_replacement_target(model, tc, g, {}, 0.0, freeze) - g.values[-1].item()) < 1e-3


def test_faithfulness_report():
    model, tc = _setup()
    g = _graph(FACT, "animal")
    r = faithfulness(model, tc, g, n=3)
    assert len(r["predicted"]) == len(r["actual"]) == 4 and len(r["nodes"]) == 3
    exact = faithfulness(model, tc, g, n=3, freeze="all")
    assert exact["faithfulness"] > 0.999


def test_figures_and_text():
    model, tc = _setup()
    g = _graph(FACT, "animal")
    pg = prune(g)
    ctx = FeatureContexts(model, tc, n_docs=20)
    fig = graph_figure(pg, ctx)
    assert isinstance(fig, go.Figure)
    hover = " ".join(t for tr in fig.data if tr.hovertext is not None for t in tr.hovertext)
    assert "top contexts" in hover and "[" in hover
    assert graph_svg(pg).startswith("<svg") and graph_svg(pg).endswith("</svg>")
    assert "logit(animal)" in graph_text(pg, ctx)


def test_bad_input_is_refused_with_a_reason():
    model, tc = _setup()
    g = _graph(FACT, "animal")
    with pytest.raises(ValueError, match="single token"):
        attribution_graph(model, tc, FACT, "animal cat")
    with pytest.raises(ValueError, match="must differ"):
        attribution_graph(model, tc, FACT, ("animal", "animal"))
    with pytest.raises(ValueError, match="outside"):
        attribution_graph(model, tc, FACT, "animal", target_pos=40)
    with pytest.raises(ValueError, match="shape"):
        attribution_graph(model, tc, FACT, torch.zeros(5))
    with pytest.raises(ValueError, match="1-D LongTensor"):
        attribution_graph(model, tc, torch.zeros(2, 3, dtype=torch.long), "animal")
    with pytest.raises(ValueError, match="feature nodes"):
        predicted_change(g, [g.target_index])
    with pytest.raises(ValueError, match="feature nodes"):
        actual_change(model, tc, g, [g.error_index(0, 1)])
    with pytest.raises(ValueError, match="freeze"):
        actual_change(model, tc, g, [0], freeze="some")
    with pytest.raises(KeyError, match="not active"):
        g.feature_index(0, 0, 0)
    from digsite import load_model

    with pytest.raises(TypeError, match="GPT-2"):
        attribution_graph(load_model("toylang-llama", device="cpu"), tc, FACT, "animal")
