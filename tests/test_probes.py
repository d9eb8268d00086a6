"""Unit tests of digsite.probes: data, probes, control tasks, directions and model comparison."""

from functools import lru_cache

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from digsite import probes as P
from digsite.models import wrap
from digsite.organisms import data as D
from digsite.organisms.tokenizer import build_tokenizer
from digsite.solutions.ch06 import train_ccs


@lru_cache(maxsize=1)
def tiny():
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=D.BOS_ID,
        eos_token_id=D.BOS_ID,
        pad_token_id=D.PAD_ID,
    )
    return wrap(GPT2LMHeadModel(cfg).eval(), tok)


def test_isa_prompts_end_with_subject_is_article():
    prompts = P.isa_prompts(n_contexts=2, seed=0)
    n_facts = sum(len(v) for v in D.CATEGORIES.values())
    assert len(prompts) == 2 * n_facts
    model = tiny()
    tokens = model.to_tokens([t for t, _, _ in prompts[:20]])
    last = P.last_positions(tokens, model.tokenizer.pad_token_id)
    for row, (_, subject, category) in enumerate(prompts[:20]):
        assert subject in D.CATEGORIES[category]
        assert model.to_string(tokens[row, last[row] - 2 : last[row] - 1]) == subject
    assert P.isa_prompts(2, 0) == prompts


def test_kind_prompts_end_with_the_word():
    prompts = P.kind_prompts(n_contexts=1, seed=0)
    assert len(prompts) == sum(len(words) for words in P.KINDS.values())
    assert all(text.endswith(" " + word) and word in P.KINDS[kind] for text, word, kind in prompts)


def test_truth_statements_pair_every_fact_with_a_false_one():
    statements = P.truth_statements(n_contexts=1, seed=0)
    assert len(statements) == 2 * len(D.fact_table())
    true = {s for _, s, t in statements if t}
    false = {s for _, s, t in statements if not t}
    assert not true & false
    assert all(text.endswith(s) for text, s, _ in statements)


def test_residuals_at_reads_the_asked_position_at_every_boundary():
    model = tiny()
    tokens = model.to_tokens(["a cat is an animal", "Paris is in France"])
    positions = torch.tensor([2, 1])
    X = P.residuals_at(model, tokens, positions)
    assert X.shape == (3, 2, 32)
    _, cache = model.run_with_cache(tokens)
    assert torch.allclose(X[0, 1], cache["blocks.0.hook_resid_pre"][1, 1])
    assert torch.allclose(X[2, 0], cache["blocks.1.hook_resid_post"][0, 2])
    assert P.last_positions(tokens, model.tokenizer.pad_token_id).tolist() == [5, 4]


def test_train_probe_fits_separable_data_deterministically():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 8, generator=g)
    y = (X[:, 0] - X[:, 1] > 0.5).long()
    a, b = P.train_probe(X, y), P.train_probe(X, y)
    assert torch.equal(a.W, b.W) and a.W.shape == (8, 2) and a.b.shape == (2,)
    assert a.accuracy(X, y) > 0.95
    d = a.direction(1)
    assert torch.nn.functional.cosine_similarity(d, torch.tensor([1.0, -1, 0, 0, 0, 0, 0, 0]), dim=0) > 0.9


def test_control_labels_one_balanced_label_per_type():
    types = ["a", "b", "c", "a", "d", "b", "e", "f"]
    labels = P.control_labels(types, 3, seed=0)
    assert labels[0] == labels[3] and labels[1] == labels[5]
    per_type = {t: int(label) for t, label in zip(types, labels)}
    assert sorted(torch.bincount(torch.tensor(list(per_type.values())), minlength=3).tolist()) == [2, 2, 2]


def test_split_indices_partition():
    train, test = P.split_indices(10, 0.3, seed=0)
    assert len(test) == 3 and sorted(train.tolist() + test.tolist()) == list(range(10))


def test_probe_scores_selectivity_is_task_minus_control():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 60, 6, generator=g)
    y = (X[1, :, 0] > 0).long()
    control = P.control_labels([str(i % 12) for i in range(60)], 2)
    train, test = P.split_indices(60, 0.3)
    s = P.probe_scores(X, y, control, train, test, steps=50, lr=0.05)
    assert torch.allclose(s["selectivity"], s["task"] - s["control"])
    assert s["task"][1] > s["task"][0]


def test_project_out_and_direction_hook():
    g = torch.Generator().manual_seed(0)
    resid, d = torch.randn(2, 5, 8, generator=g), 3 * torch.randn(8, generator=g)
    out = P.project_out(resid, d)
    assert torch.allclose(out @ P.unit(d), torch.zeros(2, 5), atol=1e-5)
    positions = torch.tensor([1, 4])
    steered = P.direction_hook(d, positions, alpha=2.0)(resid, None)
    diff = steered - resid
    assert torch.allclose(diff[0, 1], 2 * P.unit(d)) and torch.allclose(diff[1, 4], 2 * P.unit(d))
    assert diff.abs().sum() == pytest.approx(2 * (2 * P.unit(d)).abs().sum().item(), rel=1e-5)


def test_intervene_with_alpha_zero_changes_nothing():
    model = tiny()
    tokens = model.to_tokens(["a cat is an animal", "a dog is an animal"])
    positions = torch.tensor([3, 3])
    with torch.no_grad():
        clean = model(tokens)
    assert torch.allclose(P.intervene(model, tokens, 1, torch.randn(32), positions, alpha=0.0), clean, atol=1e-5)
    assert not torch.allclose(P.intervene(model, tokens, 1, torch.randn(32), positions, alpha=50.0), clean)


def test_pattern_similarity_of_a_model_with_itself():
    model = tiny()
    tokens = D.repeated_tokens(2, 5, seed=0)
    pats = P.all_patterns(model, tokens)
    assert pats.shape == (4, 2, 11, 11)
    sim = P.pattern_similarity(pats, pats)
    assert torch.allclose(sim.diagonal(), torch.ones(4), atol=1e-5)
    assert (sim <= 1 + 1e-5).all()


def test_ioi_helpers():
    model = tiny()
    prompts = D.ioi_prompts(6, seed=0, same_length=True, template="when")
    flipped = P.flip_subject(prompts[0])
    assert flipped.endswith(f"{prompts[0].io} " + prompts[0].text.rpartition(f" {prompts[0].s} ")[2])
    clean, corrupt, io, s = P.ioi_batch(model, prompts)
    assert clean.shape == corrupt.shape and io.shape == s.shape == (6,)
    assert ((clean != corrupt).sum(1) == 1).all()
    patch = P.head_patching_map(model, clean, corrupt, io, s)
    assert patch.shape == (2, 2) and torch.isfinite(patch).all()
    attn = P.ioi_attention_map(model, clean, io, s)
    assert attn.shape == (2, 2) and (attn.abs() <= 1).all()
    with pytest.raises(ValueError, match="same token length"):
        P.ioi_batch(model, D.ioi_prompts(6, seed=0))


def test_side_by_side_shares_one_colour_scale():
    fig = P.side_by_side({"a": torch.ones(2, 3), "b": -2 * torch.ones(2, 3)})
    assert len(fig.data) == 2 and fig.data[0].zmax == fig.data[1].zmax == 2


def test_contrast_prompts_two_categories_with_one_article():
    prompts = P.contrast_prompts(("instrument", "animal"), n_contexts=2, seed=0)
    n = len(D.CATEGORIES["instrument"]) + len(D.CATEGORIES["animal"])
    assert len(prompts) == 2 * n and P.contrast_prompts(("instrument", "animal"), 2, 0) == prompts
    for text, subject, label in prompts:
        assert text.endswith(f" {subject} is an") and subject in D.CATEGORIES[("instrument", "animal")[label]]
    with pytest.raises(ValueError, match="articles"):
        P.contrast_prompts(("animal", "fruit"))
    with pytest.raises(ValueError, match="two of"):
        P.contrast_prompts(("animal", "planet"))


def test_pca_finds_the_dominant_axis_with_a_fixed_sign():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 5, generator=g) * torch.tensor([5.0, 2.0, 0.5, 0.5, 0.5])
    comps, explained, scores = P.pca(X, k=2)
    assert comps.shape == (2, 5) and explained.shape == (2,) and scores.shape == (300, 2)
    assert comps[0, 0] > 0.99 and comps[1, 1].abs() > 0.99 and (comps[1, 1] > 0)
    assert explained[0] > explained[1] > 0 and explained.sum() < 1
    assert torch.allclose(scores, (X - X.mean(0)) @ comps.T, atol=1e-4)


def _pairs(seed: int = 0, n: int = 80, d: int = 6):
    """Contrast pairs with a truth signal along axis 0 and a constant shift of the second side."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    sign = (2 * y - 1).float()[:, None]
    axis = torch.zeros(d)
    axis[0] = 3.0
    x_pos = 0.3 * torch.randn(n, d, generator=g) + sign * axis
    x_neg = 0.3 * torch.randn(n, d, generator=g) - sign * axis + 5.0
    return x_pos, x_neg, y


def test_ccs_finds_a_clean_truth_direction_up_to_sign():
    x_pos, x_neg, y = _pairs()
    best, probes, losses = P.fit_ccs(x_pos, x_neg, n_restarts=3, steps=200, lr=0.05)
    assert len(probes) == 3 and losses.shape == (3,) and best is probes[int(losses.argmin())]
    accuracy = best.accuracy(x_pos, x_neg, y)
    assert max(accuracy, 1 - accuracy) > 0.95
    credence = best.credence(x_pos, x_neg)
    assert credence.shape == (80,) and ((credence > 0) & (credence < 1)).all()
    with pytest.raises(ValueError, match="both be"):
        P.fit_ccs(x_pos, x_neg[:5])


def test_ccs_without_normalisation_reads_the_side_not_the_truth():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(2, (80,), generator=g)
    weak_truth = 0.5 * (2 * y - 1).float()[:, None] * torch.eye(6)[0]
    x_pos = torch.randn(80, 6, generator=g) + weak_truth + 2.0  # every first member shares a +2 shift
    x_neg = torch.randn(80, 6, generator=g) - weak_truth - 2.0
    raw = train_ccs(x_pos, x_neg, steps=200, lr=0.05, seed=0, normalize=False)
    assert torch.equal(raw.mean_pos, torch.zeros(6)) and torch.equal(raw.std_neg, torch.ones(6))
    credence = raw.credence(x_pos, x_neg)
    assert credence.max() - credence.min() < 0.05  # the same answer for every pair: it reads the shift
    assert raw.accuracy(x_pos, x_neg, y) in (
        pytest.approx(y.float().mean().item()),
        pytest.approx(1 - y.float().mean().item()),
    )


def test_train_ccs_matches_an_independent_implementation():
    """Burns et al.'s recipe written another way (a torch Linear layer on pre-standardised pairs) learns the same probe."""
    g = torch.Generator().manual_seed(4)
    x_pos, x_neg = torch.randn(30, 5, generator=g) + 1.0, torch.randn(30, 5, generator=g) - 1.0
    probe = train_ccs(x_pos, x_neg, steps=40, lr=0.05, seed=2)

    z_pos = (x_pos - x_pos.mean(0)) / x_pos.std(0)
    z_neg = (x_neg - x_neg.mean(0)) / x_neg.std(0)
    linear = torch.nn.Linear(5, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(5, generator=torch.Generator().manual_seed(2))[None] / 5**0.5)
        linear.bias.zero_()
    opt = torch.optim.Adam(linear.parameters(), lr=0.05)
    for _ in range(40):
        p_pos, p_neg = torch.sigmoid(linear(z_pos)).squeeze(1), torch.sigmoid(linear(z_neg)).squeeze(1)
        loss = ((p_pos + p_neg - 1) ** 2).mean() + (torch.stack([p_pos, p_neg]).min(0).values ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(probe.w, linear.weight.detach()[0], atol=1e-5)
    assert torch.allclose(probe.b, linear.bias.detach()[0], atol=1e-5)
    credence = probe.credence(x_pos, x_neg)
    expected = (torch.sigmoid(linear(z_pos)).squeeze(1) + 1 - torch.sigmoid(linear(z_neg)).squeeze(1)).detach() / 2
    assert torch.allclose(credence, expected, atol=1e-5)
