"""Checks for chapter 6, probes and comparing models.

Every check builds its own small seeded inputs: random tensors, or a tiny randomly
initialised GPT-2 with the toy-language tokenizer (built once, cached), so the checks are
fast and do not depend on the trained organisms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import probes as P
from ..fixtures import tiny
from ..hooks import Hook
from ..linear_probe import CCSProbe
from ..solutions.ch06 import (
    ccs_loss,
    control_labels,
    direction_effects,
    direction_hook,
    mean_difference,
    pattern_similarity,
    probe_scores,
    project_out,
    residuals_at,
    train_ccs,
    train_probe,
)
from .core import CheckFailed, exercise_check, verify


def _tiny_model(n_layer: int = 2):
    """The checks' random GPT-2 with the toy-language tokenizer (digsite.fixtures.tiny): 2 layers, or 12."""
    return tiny(n_layer, toy=True)


# --- 6.1 residuals at a position ---------------------------------------------------------------


def _resid_last_column(model, tokens, positions):
    return residuals_at(model, tokens, torch.full_like(positions, tokens.shape[1] - 1))


def _resid_next_position(model, tokens, positions):
    return residuals_at(model, tokens, positions + 1)


def _resid_post_only(model, tokens, positions):
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    rows = torch.arange(tokens.shape[0])
    return torch.stack([cache[n][rows, positions] for n in names])


@exercise_check(
    reference=residuals_at,
    wrong_answers={
        (
            "You read the last column of the padded batch; read each prompt at its own position from `positions`."
        ): _resid_last_column,
        "You read the position after the one asked for.": _resid_next_position,
        (
            "Your stack starts after block 0: the first entry is the embedding, blocks.0.hook_resid_pre."
        ): _resid_post_only,
    },
)
def check_residuals_at(fn) -> None:
    """`residuals_at(model, tokens, positions)` must return (n_layers + 1, batch, d_model) at each prompt's position."""
    model = _tiny_model()
    tokens = model.to_tokens(["a cat is an animal", "Paris is in France", "When Mary and John went to the park"])
    verify(
        fn, model, tokens, torch.tensor([2, 1, 4]), what="the residuals at the subject positions (2 layers, batch 3)"
    )
    model = _tiny_model(12)
    verify(
        fn,
        model,
        model.to_tokens(["the owl is a bird"]),
        torch.tensor([3]),
        what="the residuals at position 3 (12 layers, batch 1)",
    )


# --- 6.2 training a probe ----------------------------------------------------------------------


def _probe_data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three classes separated along two hidden directions, thresholds away from the origin."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(400, 12, generator=g)
    score = X[:, 0] + 0.5 * X[:, 1]
    y = (score > 0.8).long() + (score > 1.6).long()
    return X[:250], y[:250], X[250:], y[250:]


def _probe_no_bias(X, y, n_classes=None, steps=300, lr=0.01, weight_decay=1e-3):
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    W = torch.zeros(X.shape[1], n_classes, requires_grad=True)
    opt = torch.optim.Adam([W], lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(X @ W, y) + weight_decay * W.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return P.LinearProbe(W.detach(), torch.zeros(n_classes))


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
    return train_probe(X, y.flip(0), n_classes, steps, lr, weight_decay)


def _probe_params(probe) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(probe, P.LinearProbe):
        raise CheckFailed(
            f"train_probe should return a LinearProbe(W, b), got {type(probe).__name__}: later cells call "
            "its .accuracy and .logits.",
            kind="type",
        )
    return probe.W, probe.b


@exercise_check(
    reference=train_probe,
    wrong_answers={
        "Your probe has no bias, so every boundary must pass through the origin: learn b as well.": _probe_no_bias,
        (
            "You minimised squared error on one-hot labels; a logistic-regression probe minimises "
            "cross-entropy on its logits."
        ): _probe_mse,
        "Your labels are out of step with the rows of X: row i must be trained on y[i].": _probe_shuffled_rows,
    },
)
def check_train_probe(fn) -> None:
    """`train_probe(X, y, n_classes, steps, lr, weight_decay)` must learn the reference's weights (deterministic Adam)."""
    Xtr, ytr, _, _ = _probe_data(0)
    with torch.enable_grad(), P.one_thread():
        verify(
            fn,
            Xtr[:120, :8],
            ytr[:120],
            3,
            30,
            use=_probe_params,
            what="the learned (W, b) with n_classes=3, steps=30",
            atol=1e-3,
            rtol=1e-3,
        )
        X, y = Xtr[120:160, :5], ytr[120:160] % 2
        verify(
            fn,
            X,
            y,
            None,
            20,
            0.05,
            0.01,
            use=_probe_params,
            what="the learned (W, b) with n_classes=None, steps=20, lr=0.05, weight_decay=0.01",
            atol=1e-3,
            rtol=1e-3,
        )


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


def _control_contract(types: list[str], n_classes: int, differ_from: torch.Tensor | None = None):
    """A compare(got, expected, what) checking the contract of control labels: any valid random draw passes."""

    def compare(got, expected, what, **_):
        if not isinstance(got, torch.Tensor) or got.dtype != torch.long or tuple(got.shape) != (len(types),):
            raise CheckFailed(
                f"{what}: expected a long tensor of shape ({len(types)},), got {_short(got)}: later cells "
                "train probes on these labels.",
                kind="type",
            )
        if got.min() < 0 or got.max() >= n_classes:
            raise CheckFailed(f"{what}: labels must lie in 0..{n_classes - 1}; got {sorted(set(got.tolist()))[:8]}.")
        per_type: dict[str, set[int]] = {}
        for t, label in zip(types, got.tolist()):
            per_type.setdefault(t, set()).add(label)
        mixed = [t for t, s in per_type.items() if len(s) > 1]
        if mixed:
            raise CheckFailed(
                f"{what}: every example of a type must get the same label; {mixed[0]!r} got {sorted(per_type[mixed[0]])}."
            )
        counts = torch.bincount(torch.tensor([next(iter(s)) for s in per_type.values()]), minlength=n_classes)
        if counts.max() - counts.min() > 1:
            raise CheckFailed(
                f"{what}: the labels should be balanced over the {len(per_type)} types; types per label: {counts.tolist()}."
            )
        if differ_from is not None and torch.equal(got, differ_from):
            raise CheckFailed(f"{what}: this seed gave the same labelling as seed 0.")

    return compare


def _short(x) -> str:
    return f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


@exercise_check(
    reference=control_labels,
    wrong_answers={
        (
            "You drew a fresh label for every example; each distinct TYPE gets one label, shared by all its examples."
        ): _control_per_example,
        "Your labels do not change with `seed`: draw them with a generator seeded by it.": _control_ignores_seed,
        (
            "Your labels are not balanced: each of the n_classes labels should go to about the same number of types."
        ): _control_unbalanced,
    },
)
def check_control_labels(fn) -> None:
    """`control_labels(types, n_classes, seed)`: one random, balanced label per distinct type, depending on the seed."""
    words = ["cat", "dog", "owl", "pear", "plum", "saw", "axe", "harp", "drum", "bus", "car", "kite"]
    g = torch.Generator().manual_seed(1)
    types = [words[i] for i in torch.randint(len(words), (60,), generator=g)] + words
    first = verify(
        fn, types, 4, 0, compare=_control_contract(types, 4), what="control labels (12 types, 4 classes, seed 0)"
    )
    verify(
        fn, types, 4, 1, compare=_control_contract(types, 4, first), what="control labels (12 types, 4 classes, seed 1)"
    )
    few = ["b", "a", "c", "a", "e", "d", "b"]
    verify(fn, few, 2, 7, compare=_control_contract(few, 2), what="control labels (5 types, 2 classes, seed 7)")


# --- 6.4 task accuracy, control accuracy, selectivity -------------------------------------------


def _scores_on_train(X, y, y_control, train_idx, test_idx, **train_kwargs):
    return probe_scores(X, y, y_control, train_idx, train_idx, **train_kwargs)


def _scores_wrong_sign(X, y, y_control, train_idx, test_idx, **train_kwargs):
    out = probe_scores(X, y, y_control, train_idx, test_idx, **train_kwargs)
    return {**out, "selectivity": out["control"] - out["task"]}


def _scores_control_on_task_labels(X, y, y_control, train_idx, test_idx, **train_kwargs):
    return probe_scores(X, y, y, train_idx, test_idx, **train_kwargs)


_FAST = {"steps": 8, "lr": 0.3}


def _selectivity_data() -> tuple[torch.Tensor, ...]:
    """Two layers: the word's identity only, then its category plus its identity."""
    g = torch.Generator().manual_seed(3)
    n_types, per_type, d = 12, 4, 8
    word = torch.arange(n_types).repeat_interleave(per_type)
    category = word % 3
    ident = torch.randn(n_types, d, generator=g)
    cat_dir = torch.randn(3, d, generator=g)
    noise = lambda: 0.3 * torch.randn(len(word), d, generator=g)
    X = torch.stack([ident[word] + noise(), ident[word] + 2 * cat_dir[category] + noise()])
    y_control = control_labels([str(int(w)) for w in word], 3, seed=0)
    train_idx, test_idx = P.split_indices(len(word), 0.3, seed=0)
    return X, category, y_control, train_idx, test_idx


@exercise_check(
    reference=probe_scores,
    wrong_answers={
        "You measured accuracy on the training examples; score on the held-out test_idx.": _scores_on_train,
        "Your selectivity has the wrong sign: it is task accuracy minus control accuracy.": _scores_wrong_sign,
        "Your control probe uses the task labels; train and score it on y_control.": _scores_control_on_task_labels,
    },
)
def check_probe_scores(fn) -> None:
    """`probe_scores(X, y, y_control, train_idx, test_idx, **train_kwargs)`: held-out task and control accuracy per layer."""
    why = "Return a dict of tensors {'task', 'control', 'selectivity'}, one value per layer: later cells plot them."
    X, y, y_control, train_idx, test_idx = _selectivity_data()
    with torch.enable_grad(), P.one_thread():
        verify(
            fn,
            X,
            y,
            y_control,
            train_idx,
            test_idx,
            **_FAST,
            what="probe scores by layer (2 layers)",
            why=why,
            atol=1e-3,
        )
        g = torch.Generator().manual_seed(9)
        X2 = torch.randn(3, 24, 4, generator=g)
        y2 = (X2[2, :, 0] > 0).long()
        X2[2, :, 1] += 3 * y2
        verify(
            fn,
            X2,
            y2,
            torch.arange(24) % 3,
            torch.arange(0, 24, 2),
            torch.arange(1, 24, 2),
            steps=6,
            lr=0.3,
            what="probe scores by layer (3 layers, steps=6, lr=0.3)",
            why=why,
            atol=1e-3,
        )


# --- 6.5 projecting a direction out ------------------------------------------------------------


def _project_unnormalised(resid, direction):
    return resid - (resid @ direction)[..., None] * direction


def _project_returns_component(resid, direction):
    d = P.unit(direction)
    return (resid @ d)[..., None] * d


def _project_divides_once(resid, direction):
    return resid - (resid @ direction)[..., None] * direction / direction.norm()


@exercise_check(
    reference=project_out,
    wrong_answers={
        "You projected onto a direction that is not unit length; normalise it first.": _project_unnormalised,
        (
            "You divided by the direction's norm once; projecting onto d takes (r·d) d / |d|², or a unit vector."
        ): _project_divides_once,
        "You returned the component along the direction; return what remains after removing it.": _project_returns_component,
    },
)
def check_project_out(fn) -> None:
    """`project_out(resid, direction)` must remove exactly the component along the direction, whatever its length."""
    g = torch.Generator().manual_seed(5)
    verify(
        fn,
        torch.randn(3, 4, 16, generator=g),
        3 * torch.randn(16, generator=g),
        what="resid (3, 4, 16) with a direction projected out",
    )
    verify(
        fn,
        torch.randn(1, 5, generator=g),
        0.2 * torch.randn(5, generator=g),
        what="resid (1, 5) with a short direction projected out",
    )


# --- 6.6 a hook that ablates or steers along a direction --------------------------------------


def _hook_unnormalised(direction, positions, alpha=None):
    if alpha is None:
        return direction_hook(direction, positions, None)
    return direction_hook(direction, positions, alpha * direction.norm().item())


def _hook_every_position(direction, positions, alpha=None):
    d = P.unit(direction)

    def hook(resid, hook):
        return project_out(resid, d) if alpha is None else resid + alpha * d

    return hook


def _hook_last_position(direction, positions, alpha=None):
    return lambda resid, hook: direction_hook(direction, torch.full_like(positions, resid.shape[1] - 1), alpha)(
        resid, hook
    )


@exercise_check(
    reference=direction_hook,
    wrong_answers={
        (
            "You steered by alpha times the raw direction; normalise it so alpha alone sets the strength."
        ): _hook_unnormalised,
        "Your hook edits every position; edit only each prompt's position from `positions`.": _hook_every_position,
        "Your hook edits the last position; edit each prompt's position from `positions`.": _hook_last_position,
    },
)
def check_direction_hook(fn) -> None:
    """`direction_hook(direction, positions, alpha)` must return a hook editing only the given positions."""
    g = torch.Generator().manual_seed(6)
    why = "direction_hook returns a function hook(resid, hook) -> edited resid."
    cases = (
        (torch.randn(3, 5, 16, generator=g), 2.5 * torch.randn(16, generator=g), torch.tensor([1, 3, 2])),
        (torch.randn(1, 4, 6, generator=g), 0.3 * torch.randn(6, generator=g), torch.tensor([0])),
    )
    for resid, direction, positions in cases:
        hook = Hook("blocks.1.hook_resid_pre")
        for alpha in (None, 4.0, -2.0):
            verify(
                fn,
                direction,
                positions,
                alpha,
                use=lambda h, resid=resid, hook=hook: h(resid.clone(), hook),
                why=why,
                what=f"resid {tuple(resid.shape)} after your hook with alpha={alpha}",
            )


# --- 6.7 attention-pattern similarity ----------------------------------------------------------


def _random_patterns(heads: int, g: torch.Generator, batch: int = 2, pos: int = 7) -> torch.Tensor:
    scores = 2 * torch.randn(heads, batch, pos, pos, generator=g)
    mask = torch.ones(pos, pos).triu(1).bool()
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
    reference=pattern_similarity,
    wrong_answers={
        "You used raw dot products; cosine similarity normalises each attention row first.": _similarity_raw_dot,
        "You included query position 0, which can only attend to itself; leave it out.": _similarity_with_first_query,
        "You normalised over queries (columns); normalise each query's row over keys.": _similarity_columns,
    },
)
def check_pattern_similarity(fn) -> None:
    """`pattern_similarity(pa, pb)` must return the (heads_a, heads_b) mean cosine similarity of attention rows."""
    g = torch.Generator().manual_seed(7)
    pa, pb = _random_patterns(3, g), _random_patterns(4, g)
    pb[0] = pa[1]  # one head of b is a copy of a head of a
    verify(fn, pa, pb, what="the similarity matrix (3 heads x 4 heads, batch 2)")
    verify(
        fn,
        _random_patterns(1, g, batch=1, pos=4),
        _random_patterns(2, g, batch=1, pos=4),
        what="the similarity matrix (1 head x 2 heads, batch 1)",
    )


# --- 6.8 the difference-of-means direction ------------------------------------------------------


def _mean_difference_reversed(X, y):
    return X[y == 0].mean(dim=0) - X[y == 1].mean(dim=0)


def _mean_difference_unit(X, y):
    return P.unit(X[y == 1].mean(dim=0) - X[y == 0].mean(dim=0))


def _mean_difference_from_overall(X, y):
    return X[y == 1].mean(dim=0) - X.mean(dim=0)


@exercise_check(
    reference=mean_difference,
    wrong_answers={
        "Your direction points from class 1 to class 0; it should point towards class 1.": _mean_difference_reversed,
        "You normalised the direction; return it at its natural length (the steering code normalises).": (
            _mean_difference_unit
        ),
        "You subtracted the mean of all rows; subtract the centre of class 0 alone.": _mean_difference_from_overall,
    },
)
def check_mean_difference(fn) -> None:
    """`mean_difference(X, y)` must return class 1's centre minus class 0's, (d_model,)."""
    g = torch.Generator().manual_seed(8)
    y = (torch.arange(30) % 3 == 0).long()
    X = torch.randn(30, 6, generator=g) + 2.0 * y[:, None] * torch.randn(6, generator=g)
    verify(fn, X, y, what="the direction for 30 rows (10 of class 1), d_model 6")
    y2 = torch.tensor([1, 0, 0, 1, 1])
    verify(fn, 3 * torch.randn(5, 4, generator=g) - 1, y2, what="the direction for 5 rows (3 of class 1), d_model 4")


# --- 6.9 the causal test -------------------------------------------------------------------------


def _effects_steer_all(model, tokens, positions, hook_name, direction, answer_ids, y, alpha):
    out = direction_effects(model, tokens, positions, hook_name, direction, answer_ids, torch.zeros_like(y), alpha)
    return {
        **direction_effects(model, tokens, positions, hook_name, direction, answer_ids, y, alpha),
        "steer": out["steer"],
    }


def _effects_unsigned_ablation(model, tokens, positions, hook_name, direction, answer_ids, y, alpha):
    out = direction_effects(model, tokens, positions, hook_name, direction, answer_ids, y, alpha)
    flipped = direction_effects(model, tokens, positions, hook_name, direction, answer_ids, torch.ones_like(y), alpha)
    return {**out, "ablate": flipped["ablate"]}


def _effects_unnormalised(model, tokens, positions, hook_name, direction, answer_ids, y, alpha):
    out = direction_effects(
        model, tokens, positions, hook_name, direction, answer_ids, y, alpha * direction.norm().item()
    )
    return {
        **direction_effects(model, tokens, positions, hook_name, direction, answer_ids, y, alpha),
        "steer": out["steer"],
    }


def _effects_answers_swapped(model, tokens, positions, hook_name, direction, answer_ids, y, alpha):
    return direction_effects(model, tokens, positions, hook_name, direction, answer_ids.flip(0), y, alpha)


@exercise_check(
    reference=direction_effects,
    wrong_answers={
        "Your steering effect averages over every prompt; steer and average over the class-0 prompts only.": (
            _effects_steer_all
        ),
        (
            "Your ablation effect ignores the label: for a class-0 prompt the right answer's margin is minus the "
            "preference."
        ): _effects_unsigned_ablation,
        "You steered by alpha times the raw direction; alpha is the length of the added vector.": _effects_unnormalised,
        "Your preference is the wrong way round: answer_ids[1]'s logit minus answer_ids[0]'s.": _effects_answers_swapped,
    },
)
def check_direction_effects(fn) -> None:
    """`direction_effects(...)` must return the steering rise, ablation fall and ablated accuracy, as the reference."""
    why = "Return a dict of floats {'steer', 'ablate', 'ablated_accuracy'}: later cells print and plot them."
    g = torch.Generator().manual_seed(11)
    model = _tiny_model()
    tokens = model.to_tokens(["a cat is an", "a harp is an", "the owl is a bird", "a drum is an", "Mary saw a dog"])
    ids = model.to_tokens(["instrument", "animal"], prepend_bos=False)[:, 0]
    verify(
        fn,
        model,
        tokens,
        torch.tensor([3, 3, 2, 3, 4]),
        "blocks.1.hook_resid_pre",
        3 * torch.randn(model.cfg.d_model, generator=g),
        ids,
        torch.tensor([1, 0, 1, 0, 1]),
        6.0,
        what="the effects at blocks.1.hook_resid_pre (2 layers, batch 5, alpha 6)",
        why=why,
    )
    model = _tiny_model(12)
    tokens = model.to_tokens(["a cat is an", "a pear is a fruit", "a harp is an"])
    verify(
        fn,
        model,
        tokens,
        torch.tensor([3, 2, 3]),
        "blocks.11.hook_resid_post",
        0.5 * torch.randn(model.cfg.d_model, generator=g),
        model.to_tokens(["fruit", "bird"], prepend_bos=False)[:, 0],
        torch.tensor([0, 1, 1]),
        -3.0,
        what="the effects at blocks.11.hook_resid_post (12 layers, batch 3, alpha -3)",
        why=why,
    )


# --- 6.10 the CCS loss ---------------------------------------------------------------------------


def _ccs_no_confidence(p_pos, p_neg):
    return (p_pos - (1 - p_neg)).pow(2).mean()


def _ccs_equal_probabilities(p_pos, p_neg):
    return (p_pos - p_neg).pow(2).mean() + torch.minimum(p_pos, p_neg).pow(2).mean()


def _ccs_max_confidence(p_pos, p_neg):
    return (p_pos - (1 - p_neg)).pow(2).mean() + torch.maximum(p_pos, p_neg).pow(2).mean()


@exercise_check(
    reference=ccs_loss,
    wrong_answers={
        (
            "Your loss has no confidence term, so p = 1/2 everywhere scores zero: also penalise the smaller of the two."
        ): _ccs_no_confidence,
        (
            "Your consistency term asks the two probabilities to be equal; a pair's two members should sum to one."
        ): _ccs_equal_probabilities,
        "Your confidence term penalises the larger probability; it is the smaller one that should be near zero.": (
            _ccs_max_confidence
        ),
    },
)
def check_ccs_loss(fn) -> None:
    """`ccs_loss(p_pos, p_neg)` must return the consistency plus confidence loss, a scalar tensor."""
    why = "Return a scalar tensor: train_ccs calls .backward() on it."
    g = torch.Generator().manual_seed(12)
    verify(fn, torch.rand(16, generator=g), torch.rand(16, generator=g), what="the loss on 16 random pairs", why=why)
    verify(
        fn,
        torch.tensor([0.9, 0.2, 0.5]),
        torch.tensor([0.05, 0.7, 0.5]),
        what="the loss on 3 pairs, one undecided",
        why=why,
    )


# --- 6.11 training a CCS probe ---------------------------------------------------------------------


def _ccs_pooled(x_pos, x_neg, steps=300, lr=0.05, seed=0, normalize=True):
    if not normalize:
        return train_ccs(x_pos, x_neg, steps, lr, seed, normalize)
    both = torch.cat([x_pos, x_neg])
    mean, std = both.mean(0), both.std(0)
    out = train_ccs((x_pos - mean) / std, (x_neg - mean) / std, steps, lr, seed, normalize=False)
    return CCSProbe(out.w, out.b, mean, std, mean, std)


def _ccs_never_normalises(x_pos, x_neg, steps=300, lr=0.05, seed=0, normalize=True):
    return train_ccs(x_pos, x_neg, steps, lr, seed, normalize=False)


def _ccs_ignores_seed(x_pos, x_neg, steps=300, lr=0.05, seed=0, normalize=True):
    return train_ccs(x_pos, x_neg, steps, lr, 0, normalize)


def _ccs_params(probe) -> tuple[torch.Tensor, ...]:
    if not isinstance(probe, CCSProbe):
        raise CheckFailed(
            f"train_ccs should return a CCSProbe(w, b, mean_pos, std_pos, mean_neg, std_neg), got "
            f"{type(probe).__name__}: later cells call its .credence and .accuracy.",
            kind="type",
        )
    return probe.w, probe.b, probe.mean_pos, probe.std_pos, probe.mean_neg, probe.std_neg


def _contrast_pairs(g: torch.Generator, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs whose second side is shifted (an "ends in this word" feature) and which share a random truth signal."""
    truth = torch.randint(2, (n, 1), generator=g).float() * 2 - 1
    signal = torch.randn(d, generator=g)
    x_pos = torch.randn(n, d, generator=g) + truth * signal
    x_neg = torch.randn(n, d, generator=g) - truth * signal + 3.0
    return x_pos, x_neg


@exercise_check(
    reference=train_ccs,
    wrong_answers={
        (
            "You normalised both sides with shared statistics; each side needs its own mean and standard deviation, "
            "or the word that ends each member stays readable."
        ): _ccs_pooled,
        "You did not normalise although normalize=True: standardise each side with its own statistics.": (
            _ccs_never_normalises
        ),
        "Your starting direction ignores `seed`: draw it from a generator seeded by it.": _ccs_ignores_seed,
    },
)
def check_train_ccs(fn) -> None:
    """`train_ccs(x_pos, x_neg, steps, lr, seed, normalize)` must learn the reference's probe (deterministic Adam)."""
    g = torch.Generator().manual_seed(13)
    with torch.enable_grad(), P.one_thread():
        x_pos, x_neg = _contrast_pairs(g, 40, 8)
        verify(
            fn,
            x_pos,
            x_neg,
            25,
            0.05,
            3,
            use=_ccs_params,
            what="the probe (w, b and statistics) after 25 steps, seed 3",
            atol=1e-3,
            rtol=1e-3,
        )
        x_pos, x_neg = _contrast_pairs(g, 12, 5)
        verify(
            fn,
            x_pos,
            x_neg,
            15,
            0.1,
            1,
            False,
            use=_ccs_params,
            what="the probe after 15 steps at lr 0.1, seed 1, normalize=False",
            atol=1e-3,
            rtol=1e-3,
        )
