"""Linear probes on the residual stream, control tasks, probe directions, and comparing two models.

Probes (chapter 6):
- `isa_prompts`, `kind_prompts`, `truth_statements`: toy-language prompts with labels, each after a random sentence;
- `residuals_at`: the residual stream at one position per prompt, at every layer boundary;
- `train_probe` / `LinearProbe`: multinomial logistic regression trained in torch (no sklearn),
  on one CPU thread (`digsite.threads.one_thread`);
- `control_labels`, `split_indices`, `probe_scores`: accuracy by layer on held-out examples,
  a control task (Hewitt & Liang, 2019) and the selectivity task − control;
- `unit`, `project_out`, `direction_hook`, `intervene`: ablating or steering along a probe direction.

Comparing models:
- `all_patterns` and `pattern_similarity`: every head's attention pattern on the same tokens,
  and how alike two sets of heads attend;
- `flip_subject`, `ioi_batch`, `head_patching_map`, `ioi_attention_map`: where the indirect-object
  circuit lives in a model (on chapter 3's data, metric and sweep: `digsite.patching`);
- `side_by_side`: one heatmap per model, on a shared colour scale.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor

from . import patching
from .hooks import Hook, HookedModel
from .lens import resid_names
from .organisms import data as D
from .organisms.data import IOIPrompt
from .threads import one_thread

# --- residuals -----------------------------------------------------------------------------


def last_positions(tokens: Tensor, pad_id: int) -> Tensor:
    """Index of each row's last real (non-pad) token. tokens: (batch, pos), right-padded -> (batch,)."""
    real = (tokens != pad_id).long()
    return real.sum(dim=1) - 1


def residuals_at(model: HookedModel, tokens: Tensor, positions: Tensor) -> Tensor:
    """The residual stream at one position per prompt, at every layer boundary.

    tokens: (batch, pos); positions: (batch,) the position to read in each prompt.
    Returns (n_layers + 1, batch, d_model): index l < n_layers is `blocks.l.hook_resid_pre`
    (index 0 is the embedding), index n_layers the last block's `hook_resid_post`.
    """
    names = resid_names(model.cfg.n_layers)
    _, cache = model.run_with_cache(tokens, names_filter=names)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    return torch.stack([cache[name][rows, positions.to(tokens.device)] for name in names])


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
    return [(f"{_context(rng)} {D.article(s)} {s} is {D.article(o)}", s, o) for _ in range(n_contexts) for s, o in facts]


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
    return [(f"{_context(rng)} {w}", w, kind) for _ in range(n_contexts) for kind, words in KINDS.items() for w in words]


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
                o = obj if truth else rng.choice([x for x in (list(D.CATEGORIES) if rel == "is-a" else D.COUNTRIES) if x != obj])
                statement = f"{D.article(subj)} {subj} is {D.article(o)} {o}" if rel == "is-a" else f"{subj} is in {o}"
                out.append((f"{_context(rng)} {statement}", statement, truth))
    return out


# --- probes --------------------------------------------------------------------------------


@dataclass
class LinearProbe:
    """A linear classifier on the residual stream: logits = X @ W + b.

    W: (d_model, n_classes), b: (n_classes,).
    """

    W: Tensor
    b: Tensor

    def logits(self, X: Tensor) -> Tensor:
        """X: (n, d_model) -> (n, n_classes)."""
        return X @ self.W + self.b

    def predict(self, X: Tensor) -> Tensor:
        """X: (n, d_model) -> (n,) predicted class."""
        return self.logits(X).argmax(dim=-1)

    def accuracy(self, X: Tensor, y: Tensor) -> float:
        """Fraction of rows of X (n, d_model) classified as y (n,)."""
        return (self.predict(X) == y).float().mean().item()

    def direction(self, cls: int = 1) -> Tensor:
        """The direction (d_model,) that raises class `cls` against the others: W[:, cls] - mean over classes.

        For a two-class probe, direction(1) points from class 0 to class 1.
        """
        return self.W[:, cls] - self.W.mean(dim=1)


def train_probe(
    X: Tensor,
    y: Tensor,
    n_classes: int | None = None,
    steps: int = 300,
    lr: float = 0.01,
    weight_decay: float = 1e-3,
) -> LinearProbe:
    """Multinomial logistic regression, full batch, Adam from zero weights (deterministic).

    X: (n, d_model) features, y: (n,) labels in 0..n_classes-1 (default max(y) + 1).
    Minimises cross-entropy + weight_decay * ||W||^2 for `steps` steps, on one CPU thread.
    """
    X = X.detach().float()
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    W = torch.zeros(X.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr)
    with torch.enable_grad(), one_thread():
        for _ in range(steps):
            loss = F.cross_entropy(X @ W + b, y) + weight_decay * W.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return LinearProbe(W.detach(), b.detach())


def split_indices(n: int, test_frac: float = 0.3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded random split of range(n) into (train_idx, test_idx), each sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = int(round(n * test_frac))
    return perm[k:].sort().values, perm[:k].sort().values


def control_labels(types: Sequence[str], n_classes: int, seed: int = 0) -> Tensor:
    """A control task (Hewitt & Liang, 2019): each distinct type gets one random label.

    types: one string per example (e.g. its subject word). Every example of a type gets the
    same label; labels are balanced over the types and independent of any real property.
    Returns (n,) long.
    """
    distinct = sorted(set(types))
    g = torch.Generator().manual_seed(seed)
    table = torch.randperm(len(distinct), generator=g) % n_classes
    label = {t: int(table[i]) for i, t in enumerate(distinct)}
    return torch.tensor([label[t] for t in types], dtype=torch.long)


def probe_scores(
    X: Tensor,
    y: Tensor,
    y_control: Tensor,
    train_idx: Tensor,
    test_idx: Tensor,
    n_classes: int | None = None,
    **train_kwargs,
) -> dict[str, Tensor]:
    """Train a task probe and a control probe at every layer; score them on held-out examples.

    X: (n_layers + 1, n, d_model) residuals; y, y_control: (n,) labels; train_idx, test_idx: (k,).
    Returns {"task": (L,), "control": (L,), "selectivity": (L,)} with selectivity = task - control.
    """
    n_task = int(y.max()) + 1 if n_classes is None else n_classes
    n_ctrl = int(y_control.max()) + 1
    task, control = [], []
    for layer in range(X.shape[0]):
        Xtr, Xte = X[layer, train_idx], X[layer, test_idx]
        task.append(train_probe(Xtr, y[train_idx], n_task, **train_kwargs).accuracy(Xte, y[test_idx]))
        ctrl = train_probe(Xtr, y_control[train_idx], n_ctrl, **train_kwargs)
        control.append(ctrl.accuracy(Xte, y_control[test_idx]))
    task_t, control_t = torch.tensor(task), torch.tensor(control)
    return {"task": task_t, "control": control_t, "selectivity": task_t - control_t}


# --- directions ----------------------------------------------------------------------------


def unit(direction: Tensor) -> Tensor:
    """direction / its norm. (d_model,) -> (d_model,)."""
    return direction / direction.norm()


def project_out(resid: Tensor, direction: Tensor) -> Tensor:
    """Remove the component of resid along direction: resid - (resid . d) d with d = unit(direction).

    resid: (..., d_model), direction: (d_model,) (any length). Returns (..., d_model).
    """
    d = unit(direction).to(resid.dtype)
    return resid - (resid @ d)[..., None] * d


def direction_hook(direction: Tensor, positions: Tensor, alpha: float | None = None) -> Callable[[Tensor, Hook], Tensor]:
    """A hook on a residual-stream point that edits one position per prompt along a direction.

    direction: (d_model,), any length; positions: (batch,). alpha None: ablate, projecting the
    direction out (`project_out`). A number: steer, adding alpha * unit(direction). Other
    positions are untouched. The hook returns the edited copy of resid (batch, pos, d_model).
    """
    d = unit(direction)

    def hook(resid: Tensor, hook: Hook) -> Tensor:
        resid = resid.clone()
        rows = torch.arange(resid.shape[0], device=resid.device)
        pos = positions.to(resid.device)
        here = resid[rows, pos]
        dd = d.to(device=resid.device, dtype=resid.dtype)
        resid[rows, pos] = project_out(here, dd) if alpha is None else here + alpha * dd
        return resid

    return hook


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


# --- comparing models ----------------------------------------------------------------------


def all_patterns(model: HookedModel, tokens: Tensor) -> Tensor:
    """Every head's attention pattern: (n_layers * n_heads, batch, q_pos, k_pos), head index = layer * n_heads + head."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    return torch.cat([cache[name].transpose(0, 1) for name in names])


def pattern_similarity(pa: Tensor, pb: Tensor) -> Tensor:
    """How alike two sets of heads attend on the same tokens.

    pa: (heads_a, batch, q_pos, k_pos), pb: (heads_b, batch, q_pos, k_pos). For each pair of heads,
    the cosine similarity of their attention rows (one distribution over keys per query),
    averaged over the batch and over every query position but the first (whose row is always
    [1, 0, ...]). Returns (heads_a, heads_b).
    """
    a = F.normalize(pa[:, :, 1:].float(), dim=-1)
    b = F.normalize(pb[:, :, 1:].float(), dim=-1)
    return torch.einsum("ibqk,jbqk->ij", a, b) / (a.shape[1] * a.shape[2])


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
                z=m.numpy(), x=[f"H{h}" for h in range(m.shape[1])], y=[f"L{layer}" for layer in range(m.shape[0])],
                colorscale="RdBu", zmid=0.0, zmin=-zmax, zmax=zmax, showscale=i == 0, colorbar=dict(title=colorbar),
                text=[[f"{v:.2f}" for v in row] for row in m.tolist()], texttemplate="%{text}",
            ),
            row=1, col=i + 1,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=i + 1)
    fig.update_layout(title=title)
    return fig
