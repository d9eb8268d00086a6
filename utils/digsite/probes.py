"""Linear probes on the residual stream, control tasks, probe directions, and comparing two models.

Probes (chapter 6):
- `isa_prompts`, `kind_prompts`, `truth_statements`: toy-language prompts with labels, each after a random sentence;
- `residuals_at`: the residual stream at one position per prompt, at every layer boundary;
- `train_probe` / `LinearProbe`: multinomial logistic regression trained in torch (no sklearn),
  on one CPU thread (`digsite.threads.one_thread`);
- `control_labels`, `split_indices`, `probe_scores`: accuracy by layer on held-out examples,
  a control task (Hewitt & Liang, 2019) and the selectivity task − control;
- `unit`, `project_out`, `direction_hook`, `intervene`: ablating or steering along a probe direction;
- `contrast_prompts`: a two-category is-a contrast set, as prompts and as contrast pairs;
- `pca`: principal components of a set of residuals;
- `fit_ccs`: contrast-consistent search (Burns et al., 2022) with restarts, keeping the lowest loss.

Comparing models:
- `all_patterns` and `pattern_similarity`: every head's attention pattern on the same tokens,
  and how alike two sets of heads attend;
- `flip_subject`, `ioi_batch`, `head_patching_map`, `ioi_attention_map`: where the indirect-object
  circuit lives in a model (on chapter 3's data, metric and sweep: `digsite.patching`);
- `side_by_side`: one heatmap per model, on a shared colour scale.
"""

from __future__ import annotations

import random
from typing import Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from . import patching
from .hooks import HookedModel
from .lens import resid_names
from .linear_probe import CCSProbe, LinearProbe
from .organisms import data as D
from .organisms.data import IOIPrompt
from .solutions import ch06 as _ch06
from .solutions.ch06 import (  # the exercises' answers, the one text of each
    control_labels,
    direction_hook,
    pattern_similarity,
    project_out,
    residuals_at,
)
from .threads import one_thread

__all__ = [
    "isa_prompts",
    "kind_prompts",
    "truth_statements",
    "contrast_prompts",
    "KINDS",
    "last_positions",
    "residuals_at",
    "LinearProbe",
    "train_probe",
    "control_labels",
    "split_indices",
    "probe_scores",
    "unit",
    "project_out",
    "direction_hook",
    "intervene",
    "pca",
    "CCSProbe",
    "fit_ccs",
    "scatter_by_label",
    "all_patterns",
    "pattern_similarity",
    "flip_subject",
    "ioi_batch",
    "head_patching_map",
    "ioi_attention_map",
    "side_by_side",
]

# --- residuals -----------------------------------------------------------------------------


def last_positions(tokens: Tensor, pad_id: int) -> Tensor:
    """Index of each row's last real (non-pad) token. tokens: (batch, pos), right-padded -> (batch,)."""
    real = (tokens != pad_id).long()
    return real.sum(dim=1) - 1


# --- data ----------------------------------------------------------------------------------


def _context(rng: random.Random) -> str:
    """One random sentence of the toy language, as context before a probed statement."""
    return D.toylang_sentence(rng)


def isa_prompts(n_contexts: int = 4, seed: int = 0) -> list[tuple[str, str, str]]:
    """Every is-a fact as an unfinished prompt after a random toy-language sentence, n_contexts times.

    Returns (text, subject, category) triples: ("The cat ran to the park. a dog is an", "dog", "animal").
    Every text ends "... SUBJECT is ARTICLE", so the subject sits two tokens before the last one.
    """
    rng = random.Random(f"isa|{seed}")
    facts = [(s, o) for s, rel, o in D.fact_table() if rel == "is-a"]
    return [
        (f"{_context(rng)} {D.article(s)} {s} is {D.article(o)}", s, o) for _ in range(n_contexts) for s, o in facts
    ]


#: the kinds of thing a word can name, for `kind_prompts`: person, place or animal.
KINDS: dict[str, list[str]] = {
    "person": D.NAMES,
    "place": D.PLACES + D.CITIES,
    "animal": D.ANIMALS + D.BIRDS,
}


def kind_prompts(n_contexts: int = 3, seed: int = 0) -> list[tuple[str, str, str]]:
    """Every person, place and animal word as the last token after a random sentence, n_contexts times.

    Returns (text, word, kind) triples: ("The dog ran to the park. Mary", "Mary", "person"); the
    word is always the last token. See `KINDS`.
    """
    rng = random.Random(f"kind|{seed}")
    return [
        (f"{_context(rng)} {w}", w, kind) for _ in range(n_contexts) for kind, words in KINDS.items() for w in words
    ]


def truth_statements(n_contexts: int = 2, seed: int = 0) -> list[tuple[str, str, bool]]:
    """Every fact, true and with a wrong object, as a full statement after a random sentence, n_contexts times.

    Returns (text, statement, is_true): ("Tom saw a red bus near the park. Paris is in Spain", "Paris is in Spain", False).
    The false object is drawn afresh per context; is-a statements keep the article agreeing with the object.
    """
    rng = random.Random(f"truth|{seed}")
    out = []
    for _ in range(n_contexts):
        for subj, rel, obj in D.fact_table():
            for truth in (True, False):
                o = (
                    obj
                    if truth
                    else rng.choice([x for x in (list(D.CATEGORIES) if rel == "is-a" else D.COUNTRIES) if x != obj])
                )
                statement = f"{D.article(subj)} {subj} is {D.article(o)} {o}" if rel == "is-a" else f"{subj} is in {o}"
                out.append((f"{_context(rng)} {statement}", statement, truth))
    return out


def contrast_prompts(
    classes: tuple[str, str] = ("instrument", "animal"), n_contexts: int = 8, seed: int = 0
) -> list[tuple[str, str, int]]:
    """Every is-a fact of two categories as an unfinished prompt after a random sentence, n_contexts times.

    Returns (text, subject, label) triples, label = index of the subject's category in `classes`:
    ("The cat ran to the park. a harp is an", "harp", 0). The two categories must take the same
    article, so the prompt's last token ("a"/"an") does not give the answer away. Completed with
    each category word, every prompt becomes a contrast pair: exactly one completion is true.
    """
    if len(classes) != 2 or any(c not in D.CATEGORIES for c in classes):
        raise ValueError(f"classes must be two of {sorted(D.CATEGORIES)}, got {classes!r}")
    if D.article(classes[0]) != D.article(classes[1]):
        raise ValueError(f"{classes!r} take different articles, which would give the answer away: pick two that agree")
    rng = random.Random(f"contrast|{seed}")
    facts = [(s, classes.index(o)) for s, rel, o in D.fact_table() if rel == "is-a" and o in classes]
    return [
        (f"{_context(rng)} {D.article(s)} {s} is {D.article(classes[0])}", s, label)
        for _ in range(n_contexts)
        for s, label in facts
    ]


# --- probes --------------------------------------------------------------------------------


def train_probe(
    X: Tensor,
    y: Tensor,
    n_classes: int | None = None,
    steps: int = 300,
    lr: float = 0.01,
    weight_decay: float = 1e-3,
) -> LinearProbe:
    """Multinomial logistic regression, full batch, Adam from zero weights (deterministic).

    Exercise 6.2's answer (`digsite.solutions.ch06.train_probe`), run with gradients on (also
    under `torch.no_grad()`) and on one CPU thread (a model this small trains fastest on one).
    X: (n, d_model) features, y: (n,) labels in 0..n_classes-1 (default max(y) + 1).
    """
    with torch.enable_grad(), one_thread():
        return _ch06.train_probe(X, y, n_classes, steps, lr, weight_decay)


def split_indices(n: int, test_frac: float = 0.3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded random split of range(n) into (train_idx, test_idx), each sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = int(round(n * test_frac))
    return perm[k:].sort().values, perm[:k].sort().values


def probe_scores(
    X: Tensor, y: Tensor, y_control: Tensor, train_idx: Tensor, test_idx: Tensor, **train_kwargs
) -> dict[str, Tensor]:
    """Train a task probe and a control probe at every layer; score them on held-out examples.

    Exercise 6.4's answer (`digsite.solutions.ch06.probe_scores`), with gradients on and on one
    CPU thread. X: (n_layers + 1, n, d_model) residuals; y, y_control: (n,) labels; train_idx,
    test_idx: (k,). Returns {"task": (L,), "control": (L,), "selectivity": (L,)}, selectivity = task - control.
    """
    with torch.enable_grad(), one_thread():
        return _ch06.probe_scores(X, y, y_control, train_idx, test_idx, **train_kwargs)


# --- directions ----------------------------------------------------------------------------


def unit(direction: Tensor) -> Tensor:
    """direction / its norm. (d_model,) -> (d_model,)."""
    return direction / direction.norm()


def intervene(
    model: HookedModel,
    tokens: Tensor,
    layer: int,
    direction: Tensor,
    positions: Tensor,
    alpha: float | None = None,
) -> Tensor:
    """Logits (batch, pos, d_vocab) with `direction_hook(direction, positions, alpha)` on boundary `layer`.

    layer indexes `resid_names` (0 = the embedding, n_layers = after the last block).
    """
    name = resid_names(model.cfg.n_layers)[layer]
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(name, direction_hook(direction, positions, alpha))])


# --- unsupervised structure -----------------------------------------------------------------


def pca(X: Tensor, k: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """Principal components of the rows of X (n, d): (components (k, d), explained (k,), scores (n, k)).

    `explained` is each component's fraction of the total variance; `scores` are the centred rows'
    coordinates along the components. Each component's sign is fixed so that its largest-magnitude
    entry is positive (SVD leaves the sign arbitrary).
    """
    Xc = X.float() - X.float().mean(dim=0)
    _, S, Vh = torch.linalg.svd(Xc, full_matrices=False)
    comps = Vh[:k]
    comps = comps * comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)).sign()
    return comps, (S[:k] ** 2) / (S**2).sum(), Xc @ comps.T


def fit_ccs(
    x_pos: Tensor, x_neg: Tensor, n_restarts: int = 10, steps: int = 300, lr: float = 0.05, seed: int = 0
) -> tuple[CCSProbe, list[CCSProbe], Tensor]:
    """Contrast-consistent search as Burns et al. (2022) run it: several random starts, keep the lowest loss.

    x_pos, x_neg: (n, d_model), the two members of each contrast pair. Each start is exercise 6.11's
    `train_ccs` (per-side normalisation, Adam) with seed `seed + i`. Returns (the probe with the
    lowest final loss, every start's probe, (n_restarts,) every start's final loss). No labels are
    used, so the sign of the result is arbitrary.
    """
    if x_pos.shape != x_neg.shape or x_pos.ndim != 2:
        raise ValueError(
            f"x_pos and x_neg must both be (n, d_model), got {tuple(x_pos.shape)} and {tuple(x_neg.shape)}"
        )
    probes, losses = [], []
    with torch.enable_grad(), one_thread():
        for i in range(n_restarts):
            probe = _ch06.train_ccs(x_pos, x_neg, steps=steps, lr=lr, seed=seed + i)
            with torch.no_grad():
                losses.append(float(_ch06.ccs_loss(*probe.probabilities(x_pos, x_neg))))
            probes.append(probe)
    losses_t = torch.tensor(losses)
    return probes[int(losses_t.argmin())], probes, losses_t


def scatter_by_label(
    points: Tensor, labels: Tensor, names: Sequence[str], title: str = "", xlabel: str = "", ylabel: str = ""
) -> go.Figure:
    """A 2-D scatter of points (n, 2), one colour per label: labels (n,) index `names`."""
    points, labels = points.detach().float().cpu(), labels.cpu()
    fig = go.Figure(
        [
            go.Scatter(x=points[labels == i, 0].numpy(), y=points[labels == i, 1].numpy(), mode="markers", name=name)
            for i, name in enumerate(names)
        ]
    )
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel)
    return fig


# --- comparing models ----------------------------------------------------------------------


def all_patterns(model: HookedModel, tokens: Tensor) -> Tensor:
    """Every head's attention pattern: (n_layers * n_heads, batch, q_pos, k_pos), head index = layer * n_heads + head."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    return torch.cat([cache[name].transpose(0, 1) for name in names])


def flip_subject(prompt: IOIPrompt) -> str:
    """The prompt with the subject's second mention replaced by the indirect object, so the answer flips.

    "When Mary and John went to the store, John gave a drink to" -> "..., Mary gave a drink to" (answer: John).
    Same token length as the prompt.
    """
    head, sep, tail = prompt.text.rpartition(f" {prompt.s} ")
    if not sep:
        raise ValueError(f"no second mention of {prompt.s!r} in {prompt.text!r}")
    return f"{head} {prompt.io} {tail}"


def ioi_batch(model: HookedModel, prompts: Sequence[IOIPrompt]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(clean, flipped, io_ids, s_ids) for a batch of indirect-object prompts of one token length.

    clean, flipped: (batch, pos) token ids of the prompts and of `flip_subject` of them (whose
    answer is the subject); io_ids, s_ids: (batch,) ids of the indirect object and the subject.
    Chapter 3's name-swap corruption (`digsite.patching.ioi_tokens`).
    """
    return patching.ioi_tokens(model, prompts)


def head_patching_map(model: HookedModel, clean: Tensor, corrupt: Tensor, io_ids: Tensor, s_ids: Tensor) -> Tensor:
    """Patch each head's output (hook_z) from the clean run into the corrupted run, one head at a time.

    clean, corrupt: (batch, pos), e.g. from `ioi_batch`; io_ids, s_ids: (batch,).
    Returns (n_layers, n_heads): the fraction of the clean logit difference it restores,
    (LD_patched - LD_corrupt) / (LD_clean - LD_corrupt); 1 = this head alone restores it all.
    Chapter 3's batched sweep (`digsite.patching.head_sweep`) does the work.
    """
    metric, _, _ = patching.normalized_logit_diff(model, clean, corrupt, io_ids, s_ids)
    return patching.head_sweep(model, corrupt, clean, metric, kind="z").cpu()


def ioi_attention_map(model: HookedModel, clean: Tensor, io_ids: Tensor, s_ids: Tensor) -> Tensor:
    """Attention from the final position to the indirect object minus to the subject, per head.

    clean: (batch, pos) IOI prompts; io_ids, s_ids: (batch,). Attention to a name counts every
    position holding it (the subject appears twice). Returns (n_layers, n_heads), mean over the batch.
    A name-mover head (Wang et al., 2022) scores high: it copies the name it attends to.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    pats = all_patterns(model, clean)[:, :, -1]  # (heads, batch, k_pos)
    to_io = (pats * (clean == io_ids[:, None])).sum(-1)
    to_s = (pats * (clean == s_ids[:, None])).sum(-1)
    return (to_io - to_s).mean(dim=1).reshape(n_layers, n_heads)


def side_by_side(maps: dict[str, Tensor], title: str = "", colorbar: str = "") -> go.Figure:
    """One (layer, head) heatmap per model, side by side on one diverging colour scale centred on 0.

    maps: model name -> (n_layers, n_heads).
    """
    zmax = max(m.abs().max().item() for m in maps.values())
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=list(maps), horizontal_spacing=0.08)
    for i, m in enumerate(maps.values()):
        m = m.detach().float().cpu()
        fig.add_trace(
            go.Heatmap(
                z=m.numpy(),
                x=[f"H{h}" for h in range(m.shape[1])],
                y=[f"L{layer}" for layer in range(m.shape[0])],
                colorscale="RdBu",
                zmid=0.0,
                zmin=-zmax,
                zmax=zmax,
                showscale=i == 0,
                colorbar=dict(title=colorbar),
                text=[[f"{v:.2f}" for v in row] for row in m.tolist()],
                texttemplate="%{text}",
            ),
            row=1,
            col=i + 1,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=i + 1)
    fig.update_layout(title=title)
    return fig
