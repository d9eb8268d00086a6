"""Checks for chapter 6, probes and comparing models.

Every check builds its own small seeded inputs: random tensors, or a tiny randomly
initialised GPT-2 with the toy-language tokenizer (built once, cached), so the checks are
fast and do not depend on the trained organisms.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from .. import probes as P
from ..hooks import Hook
from .core import CheckFailed, assert_close, exercise_check, run_learner, seeded_gpt2


@lru_cache(maxsize=1)
def _tiny_model():
    """A 2-layer, 32-wide GPT-2 with random weights and the toy-language tokenizer."""
    from ..organisms.data import BOS_ID, PAD_ID
    from ..organisms.tokenizer import build_tokenizer

    tok = build_tokenizer()
    return seeded_gpt2(tok, vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=2, n_head=2, bos_token_id=BOS_ID,
                       eos_token_id=BOS_ID, pad_token_id=PAD_ID)


# --- 6.1 residuals at a position ---------------------------------------------------------------


def _resid_last_column(model, tokens, positions):
    return P.residuals_at(model, tokens, torch.full_like(positions, tokens.shape[1] - 1))


def _resid_next_position(model, tokens, positions):
    return P.residuals_at(model, tokens, positions + 1)


def _resid_post_only(model, tokens, positions):
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    rows = torch.arange(tokens.shape[0])
    return torch.stack([cache[n][rows, positions] for n in names])


@exercise_check(
    reference=P.residuals_at,
    wrong_answers={
        "reads the last column of the padded batch, not the position asked for": _resid_last_column,
        "off by one: reads the position after": _resid_next_position,
        "stacks every block's resid_post, missing the embedding": _resid_post_only,
    },
)
def check_residuals_at(residuals_at) -> None:
    """`residuals_at(model, tokens, positions)` must return (n_layers + 1, batch, d_model) at each prompt's position."""
    model = _tiny_model()
    tokens = model.to_tokens(["a cat is an animal", "Paris is in France", "When Mary and John went to the park"])
    positions = torch.tensor([2, 1, 4])
    got = run_learner(residuals_at, model, tokens, positions)
    assert_close(got, P.residuals_at(model, tokens, positions), what="the residuals at the subject positions")


# --- 6.2 training a probe ----------------------------------------------------------------------


def _probe_data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three classes separated along two hidden directions, thresholds away from the origin."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(400, 12, generator=g)
    score = X[:, 0] + 0.5 * X[:, 1]
    y = (score > 0.8).long() + (score > 1.6).long()
    return X[:250], y[:250], X[250:], y[250:]


@lru_cache(maxsize=1)
def _reference_probe() -> P.LinearProbe:
    Xtr, ytr, _, _ = _probe_data(0)
    return P.train_probe(Xtr, ytr, 3)


def _probe_no_bias(X, y, n_classes=None, steps=300, lr=0.01, weight_decay=1e-3):
    probe = P.train_probe(X, y, n_classes, steps, lr, weight_decay)
    W = torch.zeros(X.shape[1], probe.W.shape[1], requires_grad=True)
    opt = torch.optim.Adam([W], lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(X @ W, y) + weight_decay * W.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return P.LinearProbe(W.detach(), torch.zeros(probe.W.shape[1]))


def _probe_mse(X, y, n_classes=None, steps=300, lr=0.01, weight_decay=1e-3):
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    W = torch.zeros(X.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr)
    for _ in range(steps):
        loss = (X @ W + b - F.one_hot(y, n_classes).float()).pow(2).mean() + weight_decay * W.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return P.LinearProbe(W.detach(), b.detach())


def _probe_shuffled_rows(X, y, n_classes=None, steps=300, lr=0.01, weight_decay=1e-3):
    return P.train_probe(X, y.flip(0), n_classes, steps, lr, weight_decay)


@exercise_check(
    reference=P.train_probe,
    wrong_answers={
        "no bias term (the boundaries must pass through the origin)": _probe_no_bias,
        "squared error on one-hot labels instead of cross-entropy": _probe_mse,
        "labels out of step with the rows": _probe_shuffled_rows,
    },
)
def check_train_probe(train_probe) -> None:
    """`train_probe(X, y, n_classes)` must return a LinearProbe as accurate and as well-fitted as the reference."""
    Xtr, ytr, Xte, yte = _probe_data(0)
    with torch.enable_grad(), P.one_thread():
        probe = run_learner(train_probe, Xtr.clone(), ytr.clone(), 3)
    if not isinstance(probe, P.LinearProbe):
        raise CheckFailed(f"train_probe should return a LinearProbe(W, b), got {type(probe).__name__}.")
    assert_close(torch.Size(probe.W.shape), torch.Size((12, 3)), what="the shape of W (d_model, n_classes)")
    assert_close(torch.Size(probe.b.shape), torch.Size((3,)), what="the shape of b (n_classes,)")
    ref = _reference_probe()
    acc, ref_acc = probe.accuracy(Xte, yte), ref.accuracy(Xte, yte)
    if acc < ref_acc - 0.03:
        raise CheckFailed(f"held-out accuracy {acc:.3f}; the reference probe reaches {ref_acc:.3f}.")
    loss = F.cross_entropy(probe.logits(Xtr), ytr).item()
    ref_loss = F.cross_entropy(ref.logits(Xtr), ytr).item()
    if loss > ref_loss + 0.05:
        raise CheckFailed(f"training cross-entropy {loss:.3f}; the reference reaches {ref_loss:.3f}. "
                          "Is the loss cross-entropy on the logits X @ W + b?")


# --- 6.3 control labels ------------------------------------------------------------------------


def _control_per_example(types, n_classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(n_classes, (len(types),), generator=g)


def _control_ignores_seed(types, n_classes, seed=0):
    distinct = sorted(set(types))
    return torch.tensor([distinct.index(t) % n_classes for t in types])


def _control_unbalanced(types, n_classes, seed=0):
    distinct = sorted(set(types))
    g = torch.Generator().manual_seed(seed)
    table = torch.randint(2, (len(distinct),), generator=g)  # only ever uses labels 0 and 1
    return torch.tensor([int(table[distinct.index(t)]) for t in types])


@exercise_check(
    reference=P.control_labels,
    wrong_answers={
        "a fresh random label for every example, not one per type": _control_per_example,
        "the same labelling for every seed (alphabetical order)": _control_ignores_seed,
        "labels not balanced over the types": _control_unbalanced,
    },
)
def check_control_labels(control_labels) -> None:
    """`control_labels(types, n_classes, seed)`: one random, balanced label per distinct type, depending on the seed."""
    words = ["cat", "dog", "owl", "pear", "plum", "saw", "axe", "harp", "drum", "bus", "car", "kite"]
    g = torch.Generator().manual_seed(1)
    types = [words[i] for i in torch.randint(len(words), (60,), generator=g)] + words
    n_classes = 4
    labels = {}
    for seed in (0, 1, 2):
        got = run_learner(control_labels, list(types), n_classes, seed)
        if not isinstance(got, torch.Tensor) or got.dtype != torch.long or got.shape != (len(types),):
            raise CheckFailed(f"expected a long tensor of shape ({len(types)},), got {got!r}"[:300])
        if got.min() < 0 or got.max() >= n_classes:
            raise CheckFailed(f"labels must lie in 0..{n_classes - 1}; got values {sorted(set(got.tolist()))}.")
        per_type: dict[str, set[int]] = {}
        for t, label in zip(types, got.tolist()):
            per_type.setdefault(t, set()).add(label)
        mixed = [t for t, s in per_type.items() if len(s) > 1]
        if mixed:
            raise CheckFailed(f"every example of a type must get the same label; {mixed[0]!r} got {sorted(per_type[mixed[0]])}.")
        counts = torch.bincount(torch.tensor([next(iter(per_type[w])) for w in words]), minlength=n_classes)
        if counts.max() - counts.min() > 1:
            raise CheckFailed(f"the labels should be balanced over the {len(words)} types; types per label: {counts.tolist()}.")
        labels[seed] = got
    if torch.equal(labels[0], labels[1]) and torch.equal(labels[1], labels[2]):
        raise CheckFailed("seeds 0, 1 and 2 gave the same labelling: draw the labels with a generator seeded by `seed`.")


# --- 6.4 task accuracy, control accuracy, selectivity -------------------------------------------


def _scores_on_train(X, y, y_control, train_idx, test_idx, **train_kwargs):
    return P.probe_scores(X, y, y_control, train_idx, train_idx, **train_kwargs)


def _scores_wrong_sign(X, y, y_control, train_idx, test_idx, **train_kwargs):
    out = P.probe_scores(X, y, y_control, train_idx, test_idx, **train_kwargs)
    return {**out, "selectivity": out["control"] - out["task"]}


def _scores_control_on_task_labels(X, y, y_control, train_idx, test_idx, **train_kwargs):
    return P.probe_scores(X, y, y, train_idx, test_idx, **train_kwargs)


_FAST = {"steps": 100, "lr": 0.05}


def _selectivity_data() -> tuple[torch.Tensor, ...]:
    """Two layers: the word's identity only, then its category plus its identity."""
    g = torch.Generator().manual_seed(3)
    n_types, per_type, d = 24, 6, 16
    word = torch.arange(n_types).repeat_interleave(per_type)
    category = word % 3
    ident = torch.randn(n_types, d, generator=g)
    cat_dir = torch.randn(3, d, generator=g)
    noise = lambda: 0.3 * torch.randn(len(word), d, generator=g)  # noqa: E731
    X = torch.stack([ident[word] + noise(), ident[word] + 2 * cat_dir[category] + noise()])
    y_control = P.control_labels([str(int(w)) for w in word], 3, seed=0)
    train_idx, test_idx = P.split_indices(len(word), 0.3, seed=0)
    return X, category, y_control, train_idx, test_idx


@exercise_check(
    reference=P.probe_scores,
    wrong_answers={
        "accuracy measured on the training set": _scores_on_train,
        "selectivity with the wrong sign (control - task)": _scores_wrong_sign,
        "control probe trained and scored on the task labels": _scores_control_on_task_labels,
    },
)
def check_probe_scores(probe_scores) -> None:
    """`probe_scores(X, y, y_control, train_idx, test_idx, **train_kwargs)`: held-out task and control accuracy per layer, and their difference."""
    X, y, y_control, train_idx, test_idx = _selectivity_data()
    with torch.enable_grad(), P.one_thread():
        got = run_learner(probe_scores, X.clone(), y.clone(), y_control.clone(), train_idx, test_idx, **_FAST)
    if not isinstance(got, dict):
        raise CheckFailed(f"expected a dict with keys 'task', 'control', 'selectivity', got {type(got).__name__}.")
    got = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in got.items()}
    assert_close(got, _reference_scores(), what="probe scores by layer", atol=1e-3)


@lru_cache(maxsize=1)
def _reference_scores() -> dict[str, torch.Tensor]:
    X, y, y_control, train_idx, test_idx = _selectivity_data()
    return P.probe_scores(X, y, y_control, train_idx, test_idx, **_FAST)


# --- 6.5 projecting a direction out ------------------------------------------------------------


def _project_unnormalised(resid, direction):
    return resid - (resid @ direction)[..., None] * direction


def _project_returns_component(resid, direction):
    d = P.unit(direction)
    return (resid @ d)[..., None] * d


def _project_divides_once(resid, direction):
    return resid - (resid @ direction)[..., None] * direction / direction.norm()


@exercise_check(
    reference=P.project_out,
    wrong_answers={
        "projection without normalising the direction": _project_unnormalised,
        "divides by the norm once instead of twice": _project_divides_once,
        "returns the component along the direction instead of what remains": _project_returns_component,
    },
)
def check_project_out(project_out) -> None:
    """`project_out(resid, direction)` must remove exactly the component along the direction, whatever its length."""
    g = torch.Generator().manual_seed(5)
    resid = torch.randn(3, 4, 16, generator=g)
    direction = 3 * torch.randn(16, generator=g)
    got = run_learner(project_out, resid.clone(), direction.clone())
    assert_close(got, P.project_out(resid, direction), what="resid with the direction projected out")


# --- 6.6 a hook that ablates or steers along a direction --------------------------------------


def _hook_unnormalised(direction, positions, alpha=None):
    if alpha is None:
        return P.direction_hook(direction, positions, None)
    return P.direction_hook(direction, positions, alpha * direction.norm().item())


def _hook_every_position(direction, positions, alpha=None):
    d = P.unit(direction)

    def hook(resid, hook):
        return P.project_out(resid, d) if alpha is None else resid + alpha * d

    return hook


def _hook_last_position(direction, positions, alpha=None):
    return lambda resid, hook: P.direction_hook(direction, torch.full_like(positions, resid.shape[1] - 1), alpha)(resid, hook)


@exercise_check(
    reference=P.direction_hook,
    wrong_answers={
        "steers by alpha * direction without normalising it": _hook_unnormalised,
        "edits every position, not just the probe's": _hook_every_position,
        "edits the last position instead of the given ones": _hook_last_position,
    },
)
def check_direction_hook(direction_hook) -> None:
    """`direction_hook(direction, positions, alpha)` must return a hook editing only the given positions."""
    g = torch.Generator().manual_seed(6)
    resid = torch.randn(3, 5, 16, generator=g)
    direction = 2.5 * torch.randn(16, generator=g)
    positions = torch.tensor([1, 3, 2])
    hook = Hook("blocks.1.hook_resid_pre")
    for alpha in (None, 4.0):
        what = "the ablated residual" if alpha is None else f"the residual steered with alpha={alpha}"
        fn = run_learner(direction_hook, direction.clone(), positions.clone(), alpha)
        got = run_learner(fn, resid.clone(), hook)
        assert_close(got, P.direction_hook(direction, positions, alpha)(resid.clone(), hook), what=what)


# --- 6.7 attention-pattern similarity ----------------------------------------------------------


def _random_patterns(heads: int, g: torch.Generator) -> torch.Tensor:
    scores = 2 * torch.randn(heads, 2, 7, 7, generator=g)
    mask = torch.ones(7, 7).triu(1).bool()
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def _similarity_raw_dot(pa, pb):
    return torch.einsum("ibqk,jbqk->ij", pa[:, :, 1:], pb[:, :, 1:]) / (pa.shape[1] * (pa.shape[2] - 1))


def _similarity_with_first_query(pa, pb):
    a, b = F.normalize(pa, dim=-1), F.normalize(pb, dim=-1)
    return torch.einsum("ibqk,jbqk->ij", a, b) / (a.shape[1] * a.shape[2])


def _similarity_columns(pa, pb):
    a, b = F.normalize(pa[:, :, 1:], dim=-2), F.normalize(pb[:, :, 1:], dim=-2)
    return torch.einsum("ibqk,jbqk->ij", a, b) / (a.shape[1] * a.shape[3])


@exercise_check(
    reference=P.pattern_similarity,
    wrong_answers={
        "raw dot products, rows not normalised": _similarity_raw_dot,
        "includes the first query position": _similarity_with_first_query,
        "normalises key columns instead of query rows": _similarity_columns,
    },
)
def check_pattern_similarity(pattern_similarity) -> None:
    """`pattern_similarity(pa, pb)` must return the (heads_a, heads_b) mean cosine similarity of attention rows."""
    g = torch.Generator().manual_seed(7)
    pa, pb = _random_patterns(3, g), _random_patterns(4, g)
    pb[0] = pa[1]  # one head of b is a copy of a head of a
    got = run_learner(pattern_similarity, pa.clone(), pb.clone())
    assert_close(got, P.pattern_similarity(pa, pb), what="the similarity matrix (heads_a, heads_b)")
