"""Toy models of superposition (Elhage et al., 2022), many small models trained at once.

A toy model squeezes `n_features` sparse features into `n_hidden < n_features` dimensions and
reads them back out: h = W x, x' = ReLU(W^T h + b). Each *instance* is an independent model
with its own feature probability (1 - sparsity) and feature importances, so a whole sweep
trains as one batched model in seconds on a CPU.

Shapes: W (inst, n_hidden, n_features), b (inst, n_features), features (batch, inst, n_features).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn
from tqdm.auto import tqdm

# The course's answers are the one text of these two (course/04_superposition_saes.py, generated
# into digsite.solutions.ch04); the package re-exports them.
from .solutions.ch04 import feature_dimensionality, toy_forward  # noqa: F401 (re-exported)
from .threads import one_thread


def generate_batch(batch: int, feature_probability: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sparse features: each is uniform in [0, 1] with probability p, else 0.

    feature_probability: (inst, n_features). Returns (batch, inst, n_features).
    """
    shape = (batch, *feature_probability.shape)
    values = torch.rand(shape, generator=generator)
    present = torch.rand(shape, generator=generator) < feature_probability
    return values * present


def generate_paired_batch(
    batch: int, feature_probability: Tensor, generator: torch.Generator | None = None, *, correlated: bool
) -> Tensor:
    """Features in pairs (0, 1), (2, 3), ...: each member present with probability p, as in `generate_batch`,
    but the two members of a pair are correlated (present together or not at all) or
    anti-correlated (never present together: the pair is on with probability 2p, then one
    member, by a fair coin). Elhage et al. (2022), section "Correlated and anticorrelated features".

    feature_probability: (inst, n_features), n_features even, equal within a pair (p <= 1/2 when
    anti-correlated). Returns (batch, inst, n_features), values uniform in [0, 1] where present.
    """
    inst, n_feat = feature_probability.shape
    if n_feat % 2:
        raise ValueError(f"paired features need an even number of features, got {n_feat}")
    p = feature_probability[:, 0::2]  # (inst, n_pairs)
    if not correlated and (p > 0.5).any():
        raise ValueError("anti-correlated pairs need p <= 0.5 (the pair is on with probability 2p)")
    values = torch.rand(batch, inst, n_feat, generator=generator)
    u = torch.rand(batch, inst, n_feat // 2, generator=generator)
    if correlated:
        on = (u < p).repeat_interleave(2, dim=-1)
    else:
        first = torch.rand(batch, inst, n_feat // 2, generator=generator) < 0.5
        pair_on = u < 2 * p
        on = torch.stack([pair_on & first, pair_on & ~first], dim=-1).flatten(-2)
    return values * on


class ToyModel(nn.Module):
    """`n_instances` independent toy models trained together.

    feature_probability and importance: (inst, n_features), or anything broadcastable to it.
    """

    def __init__(
        self,
        n_instances: int,
        n_features: int,
        n_hidden: int,
        feature_probability: Tensor | float,
        importance: Tensor | float = 1.0,
        seed: int = 0,
    ):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        shape = (n_instances, n_features)
        self.register_buffer(
            "feature_probability",
            torch.broadcast_to(torch.as_tensor(feature_probability, dtype=torch.float32), shape).clone(),
        )
        self.register_buffer(
            "importance", torch.broadcast_to(torch.as_tensor(importance, dtype=torch.float32), shape).clone()
        )
        W = torch.empty(n_instances, n_hidden, n_features)
        bound = math.sqrt(6 / (n_hidden + n_features))  # Xavier uniform
        W.uniform_(-bound, bound, generator=gen)
        self.W = nn.Parameter(W)
        self.b_final = nn.Parameter(torch.zeros(n_instances, n_features))

    def forward(self, features: Tensor) -> Tensor:
        """features (batch, inst, n_features) -> reconstruction (batch, inst, n_features)."""
        return toy_forward(self.W, self.b_final, features)

    def loss(self, features: Tensor) -> Tensor:
        """Importance-weighted squared error, averaged over batch and features, summed over instances."""
        err = self.importance * (self(features) - features) ** 2
        return err.mean(dim=(0, 2)).sum()


def train_toy_model(
    model: ToyModel,
    steps: int = 3000,
    batch_size: int = 1024,
    lr: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
    data: Callable[[int, Tensor, torch.Generator], Tensor] = generate_batch,
) -> Tensor:
    """Adam on fresh sparse batches, learning rate with a cosine decay. Returns the loss (steps,).

    `data(batch, feature_probability, generator)` draws each batch (default `generate_batch`;
    e.g. `functools.partial(generate_paired_batch, correlated=True)`).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    history = torch.empty(steps)
    with one_thread():
        for step in tqdm(range(steps), disable=not progress, desc="toy models"):
            loss = model.loss(data(batch_size, model.feature_probability, gen))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            history[step] = loss.detach()
    return history


_GROUP_COLOURS = ("31, 119, 180", "214, 39, 40", "44, 160, 44", "255, 127, 14", "148, 103, 189", "140, 86, 75")


def plot_features_2d(
    W: Tensor,
    importance: Tensor | None = None,
    titles: Sequence[str] | None = None,
    groups: Sequence[int] | None = None,
) -> go.Figure:
    """One panel per instance: each feature's 2-D embedding W[:, i] drawn as an arrow from the origin.

    W: (inst, 2, n_features); importance (n_features,) shades the arrows (dark = important);
    groups (n_features,) optional group ids (e.g. correlated pairs), one colour per group.
    """
    W = W.detach().cpu()
    n_inst, n_hidden, n_feat = W.shape
    if n_hidden != 2:
        raise ValueError(f"plot_features_2d draws 2-D embeddings, got n_hidden={n_hidden}")
    imp = importance.detach().cpu() if importance is not None else torch.ones(n_feat)
    names = list(titles) if titles is not None else [f"instance {i}" for i in range(n_inst)]
    fig = make_subplots(rows=1, cols=n_inst, subplot_titles=names, horizontal_spacing=0.02)
    lim = float(W.abs().max()) * 1.15 + 1e-6
    for i in range(n_inst):
        for f in range(n_feat):
            shade = 0.25 + 0.75 * float(imp[f] / imp.max())
            rgb = _GROUP_COLOURS[groups[f] % len(_GROUP_COLOURS)] if groups is not None else _GROUP_COLOURS[0]
            colour = f"rgba({rgb}, {shade:.2f})"
            x, y = float(W[i, 0, f]), float(W[i, 1, f])
            fig.add_trace(
                go.Scatter(
                    x=[0, x],
                    y=[0, y],
                    mode="lines+markers",
                    line=dict(color=colour, width=2),
                    marker=dict(size=[0, 7], color=colour),
                    name=f"feature {f}",
                    showlegend=False,
                    hovertext=f"feature {f}",
                ),
                row=1,
                col=i + 1,
            )
        fig.update_xaxes(range=[-lim, lim], visible=False, row=1, col=i + 1)
        fig.update_yaxes(range=[-lim, lim], visible=False, scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)
    fig.update_layout(height=260, width=max(260, 180 * n_inst), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def phase_diagram(
    densities: Tensor,
    relative_importances: Tensor,
    steps: int = 2000,
    restarts: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> Tensor:
    """The phase change of Elhage et al. for 2 features in 1 hidden dimension, one instance per grid cell.

    Feature 0 has importance 1, feature 1 the relative importance r; both appear with the same
    probability (the density, 1 - sparsity). Each cell is trained `restarts` times from different
    initialisations (all as instances of one batched model) and the run with the lowest loss
    kept, since a single run can stop in a local minimum. densities: (n_d,),
    relative_importances: (n_r,). Returns (n_r, n_d) codes: 0 = only feature 0 is represented,
    1 = only feature 1, 2 = both, in superposition, 3 = neither (see `classify_two_features`).
    """
    n_d, n_r = len(densities), len(relative_importances)
    cells = n_d * n_r  # instance i = restart i // cells, r index (i % cells) // n_d, density index i % n_d
    dens = densities.repeat(n_r).repeat(restarts)
    rel = relative_importances.repeat_interleave(n_d).repeat(restarts)
    model = ToyModel(
        cells * restarts, 2, 1, torch.stack([dens, dens], 1), torch.stack([torch.ones_like(rel), rel], 1), seed=seed
    )
    train_toy_model(model, steps=steps, batch_size=512, lr=2e-2, seed=seed, progress=progress)
    with torch.no_grad():
        x = generate_batch(8192, model.feature_probability, torch.Generator().manual_seed(seed + 1))
        loss = (model.importance * (model(x) - x) ** 2).mean(dim=(0, 2)).reshape(restarts, cells)
    best = loss.argmin(0) * cells + torch.arange(cells)
    return classify_two_features(model.W.detach()[best]).reshape(n_r, n_d)


def classify_two_features(W: Tensor, threshold: float = 0.5) -> Tensor:
    """Which of two features a 1-dimensional toy model represents, by the size of its weights.

    W: (inst, 1, 2). A feature is represented when its weight's magnitude exceeds `threshold`.
    Returns (inst,) codes: 0 = only feature 0, 1 = only feature 1, 2 = both (in superposition),
    3 = neither.
    """
    on = W[:, 0, :].abs() > threshold
    code = torch.full(on.shape[:1], 3, dtype=torch.long, device=W.device)
    code[on[:, 0] & ~on[:, 1]] = 0
    code[~on[:, 0] & on[:, 1]] = 1
    code[on[:, 0] & on[:, 1]] = 2
    return code
