"""Fourier analysis of modular addition (chapter 5): the basis of Z_p, projections, key
frequencies, frequency ablation, and a tiny grokking run to watch live.

Conventions (those of Nanda et al. 2023, "Progress measures for grokking via mechanistic
interpretability"): the Fourier basis of functions on Z_p = {0, ..., p-1} (p odd) is a
(p, p) matrix whose *rows* are orthonormal basis vectors, in the order

    row 0          the constant 1/sqrt(p)
    row 2k - 1     cos(2 pi k x / p), scaled to unit norm     (k = 1 .. (p-1)/2)
    row 2k         sin(2 pi k x / p), scaled to unit norm

so `basis @ f` are the Fourier coefficients of a function f (p,) and `basis.T @ coeffs`
rebuilds it. A "frequency" is an integer k in 1 .. (p-1)/2.

`fourier_basis`, `project_onto_basis`, `key_frequencies`, `ablate_frequencies`, `fourier_2d`
and `cos_logit_terms` are chapter 5's exercise answers, re-exported from the one text of each
in `digsite.solutions.ch05` (generated from course/05_modular_arithmetic.py); their shapes are
the exercises' (W (p, d), acts (p, p, n)).

The modular-addition organism reads "a b =" (token ids a, b and p for "=") and predicts
(a + b) mod p at the last position; `all_pairs(p)` (from `digsite.organisms.data`) lists
every input a-major (row a * p + b), so a (p*p, ...) tensor reshapes to (p, p, ...) indexed [a, b].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor

from .organisms.data import all_pairs
from .solutions.ch05 import (  # the exercises' answers, the one text of each
    ablate_frequencies,
    cos_logit_terms,
    fourier_2d,
    fourier_basis,
    key_frequencies,
    project_onto_basis,
)
from .threads import one_thread

__all__ = [
    "fourier_basis",
    "basis_labels",
    "frequency_rows",
    "project_onto_basis",
    "frequency_norms",
    "key_frequencies",
    "fourier_2d",
    "neuron_frequencies",
    "cos_logit_terms",
    "ablate_frequencies",
    "all_pairs",
    "embedding_replacement_hook",
    "evaluate_all_pairs",
    "load_history",
    "grokking_figure",
    "CHECKPOINTS_FILE",
    "checkpoint_steps",
    "load_checkpoint",
    "train_rows",
    "weight_norm",
    "progress_measures",
    "progress_figure",
    "GrokRun",
    "train_grokking",
]


# --- the basis ------------------------------------------------------------------------


def basis_labels(p: int) -> list[str]:
    """Names of the rows of `fourier_basis(p)`: ["const", "cos 1", "sin 1", "cos 2", ...]."""
    labels = ["const"]
    for k in range(1, p // 2 + 1):
        labels += [f"cos {k}", f"sin {k}"]
    return labels[:p]


def frequency_rows(k: int) -> tuple[int, int]:
    """The rows of the basis holding frequency k: (cos k, sin k) = (2k - 1, 2k)."""
    if k < 1:
        raise ValueError(f"Frequencies start at 1 (row 0 is the constant), got {k}.")
    return 2 * k - 1, 2 * k


def frequency_norms(W_fourier: Tensor) -> Tensor:
    """The norm of each frequency's part of a Fourier-basis tensor.

    W_fourier: (p, ...) in the Fourier basis along axis 0. Returns ((p-1)/2,): entry k-1 is
    sqrt(||row cos k||^2 + ||row sin k||^2), summed over every trailing axis.
    """
    sq = W_fourier.pow(2).reshape(W_fourier.shape[0], -1).sum(dim=1)
    n_freq = (W_fourier.shape[0] - 1) // 2
    return (sq[1 : 2 * n_freq : 2] + sq[2 : 2 * n_freq + 1 : 2]).sqrt()


def neuron_frequencies(acts: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """For each neuron, the frequency that explains most of its activation over (a, b), and how much.

    acts: (p, p, d_mlp) activations indexed [a, b, neuron]. A neuron "uses" frequency k
    when its 2-D Fourier coefficients sit on the rows/columns {const, cos k, sin k} of both
    axes. Returns (freq (d_mlp,) long, fraction (d_mlp,) float): the best k and the fraction
    of the neuron's variance (everything but the const x const term) it explains.
    """
    coeffs = fourier_2d(acts, basis).pow(2)  # (p, p, d_mlp)
    coeffs[0, 0] = 0.0
    total = coeffs.sum(dim=(0, 1)).clamp_min(1e-12)
    n_freq = (acts.shape[0] - 1) // 2
    fracs = []
    for k in range(1, n_freq + 1):
        idx = torch.tensor([0, *frequency_rows(k)])
        fracs.append(coeffs[idx][:, idx].sum(dim=(0, 1)) / total)
    fracs_t = torch.stack(fracs)  # (n_freq, d_mlp)
    best = fracs_t.max(dim=0)
    return best.indices + 1, best.values


# --- running the organism on every input ----------------------------------------------


def embedding_replacement_hook(tokens: Tensor, W_numbers: Tensor):
    """A forward hook for `hook_embed` that embeds the numbers with `W_numbers` instead.

    tokens: (batch, 3) the inputs being run; W_numbers: (p, d_model) replacement embeddings
    of the number tokens 0..p-1. The "=" token keeps its own embedding.
    """

    def hook(embed: Tensor, hook) -> Tensor:
        out = embed.clone()
        ids = tokens.to(embed.device)
        is_number = ids < W_numbers.shape[0]
        out[is_number] = W_numbers.to(embed.device, embed.dtype)[ids[is_number]]
        return out

    return hook


@torch.no_grad()
def evaluate_all_pairs(model, p: int, W_numbers: Tensor | None = None, batch_size: int = 4096) -> dict[str, float]:
    """Accuracy and loss of a hooked modular-addition model on all p*p inputs.

    model: a `HookedModel` (e.g. `load_model("modadd")`). With `W_numbers` (p, d_model),
    the number tokens are embedded with it (through a `hook_embed` hook) instead of the
    model's own embedding. Returns {"accuracy": ..., "loss": ...}.
    """
    tokens, labels = all_pairs(p)
    correct, loss = 0, 0.0
    for start in range(0, len(tokens), batch_size):
        t = tokens[start : start + batch_size]
        y = labels[start : start + batch_size].to(model.device)
        hooks = [] if W_numbers is None else [("hook_embed", embedding_replacement_hook(t, W_numbers))]
        logits = model.run_with_hooks(t, fwd_hooks=hooks)[:, -1, :p].float()
        correct += int((logits.argmax(-1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    return {"accuracy": correct / len(tokens), "loss": loss / len(tokens)}


# --- training history -----------------------------------------------------------------


def load_history(source: str | Path = "modadd") -> dict:
    """The saved training history of a modular-addition run.

    source: a bundled organism's name or a folder / history.json path. Returns the JSON:
    {"steps", "config": {"p", "frac_train", "data_seed"}, "history": [{"step", "train_loss",
    "test_loss", "train_acc", "test_acc"}, ...]}.
    """
    path = Path(source)
    if not path.exists():
        from .organisms import organism_path

        path = organism_path(str(source))
    if path.is_dir():
        path = path / "history.json"
    return json.loads(path.read_text())


def grokking_figure(history: Sequence[dict], title: str = "Grokking") -> go.Figure:
    """Train/test loss (log scale) and accuracy against step, from a list of history records."""
    steps = [r["step"] for r in history]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (log scale)", "accuracy"))
    for col, key in ((1, "loss"), (2, "acc")):
        for split, colour in (("train", "#1f77b4"), ("test", "#d62728")):
            fig.add_trace(
                go.Scatter(
                    x=steps, y=[r[f"{split}_{key}"] for r in history], name=f"{split} {key}", line=dict(color=colour)
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(title=title, height=380)
    return fig


# --- checkpoints over training and progress measures -----------------------------------

CHECKPOINTS_FILE = "checkpoints.safetensors"


def _checkpoint_folder(name: str | Path) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    from .organisms import organism_path

    return organism_path(str(name))


def checkpoint_steps(name: str | Path = "modadd") -> list[int]:
    """The training steps whose weights ship with a modular-addition organism, the final step included.

    name: a bundled organism or a folder written by `python -m digsite.organisms train modadd`.
    Step s means the weights after optimiser step s (0-based), the step at which history.json
    logs the test metrics. The intermediate ones are in checkpoints.safetensors (fp16); the last
    is the organism itself.
    """
    from safetensors import safe_open

    folder = _checkpoint_folder(name)
    file = folder / CHECKPOINTS_FILE
    if not file.exists():
        raise FileNotFoundError(
            f"{folder} has no {CHECKPOINTS_FILE}: this organism was saved without its training checkpoints. "
            "Retrain it with `python -m digsite.organisms train modadd`, which keeps them."
        )
    with safe_open(str(file), "pt") as f:
        steps = json.loads(f.metadata()["steps"])
    return sorted(steps) + [load_history(folder)["steps"] - 1]


def load_checkpoint(step: int, name: str | Path = "modadd", device: str | torch.device | None = None):
    """The organism's weights at training step `step`, as a hooked model (float32, eval mode).

    step: one of `checkpoint_steps(name)` (a ValueError lists them otherwise). The final step
    returns `load_model(name)`; the others are rebuilt from the fp16 copies in
    checkpoints.safetensors, so their outputs differ from the training run's by fp16 rounding.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from .models import default_device, load_model, verify_shipped_weights, wrap
    from .organisms import WEIGHTS_DIR

    folder = _checkpoint_folder(name)
    steps = checkpoint_steps(folder)
    if folder.parent == WEIGHTS_DIR:  # a shipped organism: the file must be the one its card records
        verify_shipped_weights(folder)
    if step not in steps:
        raise ValueError(f"No checkpoint at step {step} in {folder}; the shipped steps are {steps}.")
    if step == steps[-1]:
        return load_model(str(folder), device=device)
    prefix = f"step{step}."
    weights = {
        k[len(prefix) :]: v.float()
        for k, v in load_file(str(folder / CHECKPOINTS_FILE)).items()
        if k.startswith(prefix)
    }
    hf = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(folder)))
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    tied = {"lm_head.weight"}  # tied to the embedding, stored once
    if unexpected or set(missing) - tied:
        raise ValueError(
            f"{folder / CHECKPOINTS_FILE} does not match config.json: missing {missing}, unexpected {unexpected}."
        )
    hf.tie_weights()
    model = wrap(hf.eval().to(device or default_device()), AutoTokenizer.from_pretrained(str(folder)))
    return model


def train_rows(train_x: Tensor, p: int) -> Tensor:
    """The rows of `all_pairs(p)` holding the training inputs train_x (n, 3): a * p + b, shape (n,)."""
    return train_x[:, 0] * p + train_x[:, 1]


def weight_norm(model) -> float:
    """The L2 norm of all the model's parameters together (what weight decay shrinks)."""
    return float(torch.sqrt(sum(q.detach().float().pow(2).sum() for q in model.model.parameters())))


@torch.no_grad()
def progress_measures(model, p: int, key_freqs: Sequence[int], train_idx: Tensor) -> dict[str, float]:
    """Nanda et al.'s progress measures of a modular-addition model, on all p*p inputs at once.

    train_idx: (n_train,) rows of `all_pairs(p)` in the training set (`train_rows`). Returns
    {"train_loss", "test_loss", "restricted_loss", "excluded_loss", "weight_norm"}: the restricted
    and excluded losses as exercise 5.9 defines them (`progress_losses`), for the key frequencies given.
    """
    from .solutions.ch05 import progress_losses

    tokens, labels = all_pairs(p)
    logits = model(tokens)[:, -1, :p].float().cpu()
    is_train = torch.zeros(p * p, dtype=torch.bool)
    is_train[train_idx] = True
    restricted, excluded = progress_losses(logits, list(key_freqs), train_idx)
    return {
        "train_loss": float(F.cross_entropy(logits[is_train], labels[is_train])),
        "test_loss": float(F.cross_entropy(logits[~is_train], labels[~is_train])),
        "restricted_loss": float(restricted),
        "excluded_loss": float(excluded),
        "weight_norm": weight_norm(model),
    }


def progress_figure(steps: Sequence[int], measures: Sequence[dict], title: str = "Progress measures") -> go.Figure:
    """Train, test, restricted and excluded loss (log scale) and the weight norm against step.

    steps: the checkpoints' steps; measures: one `progress_measures` dict per step.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (log scale)", "weight norm"))
    styles = {
        "train_loss": ("train loss", "#1f77b4", "solid"),
        "test_loss": ("test loss", "#d62728", "solid"),
        "restricted_loss": ("restricted loss", "#2ca02c", "dash"),
        "excluded_loss": ("excluded loss", "#9467bd", "dash"),
    }
    for key, (name, colour, dash) in styles.items():
        fig.add_trace(
            go.Scatter(
                x=list(steps),
                y=[m[key] for m in measures],
                name=name,
                mode="lines+markers",
                line=dict(color=colour, dash=dash),
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=list(steps),
            y=[m["weight_norm"] for m in measures],
            name="weight norm",
            mode="lines+markers",
            line=dict(color="#7f7f7f"),
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(title=title, height=380)
    return fig


# --- a tiny live grokking run ---------------------------------------------------------


class GrokRun:
    """The result of `train_grokking`: the model (a Hugging Face GPT-2), its data split and history."""

    def __init__(self, model, p: int, train_idx: Tensor, test_idx: Tensor, history: list[dict]):
        self.model = model
        self.p = p
        self.train_idx = train_idx
        self.test_idx = test_idx
        self.history = history

    def grokked_at(self, threshold: float = 0.99) -> int | None:
        """First logged step with test accuracy >= threshold (None if never)."""
        return next((r["step"] for r in self.history if r["test_acc"] >= threshold), None)

    def memorised_at(self, threshold: float = 0.99) -> int | None:
        """First logged step with train accuracy >= threshold (None if never)."""
        return next((r["step"] for r in self.history if r["train_acc"] >= threshold), None)


def train_grokking(
    p: int = 31,
    frac_train: float = 0.4,
    steps: int = 1500,
    d_model: int = 32,
    lr: float = 1e-2,
    weight_decay: float = 1.0,
    seed: int = 0,
    log_every: int = 10,
    progress: bool = True,
) -> GrokRun:
    """Train a small 1-layer GPT-2 on (a + b) mod p, full batch, and log the curves.

    The same recipe as the `modadd` organism (relu MLP, AdamW, weight decay 1.0, full batch)
    at a size that groks in seconds on a CPU: p = 31, d_model 32, 4 heads, d_mlp 4*d_model.
    Stops early a few hundred steps after test accuracy first reaches 100%.
    Returns a GrokRun whose history has {"step", "train_loss", "test_loss", "train_acc",
    "test_acc"} every `log_every` steps.
    """
    with one_thread():  # a model this small trains fastest on one thread (and 100x faster on a busy CPU)
        return _train_grokking(p, frac_train, steps, d_model, lr, weight_decay, seed, log_every, progress)


def _train_grokking(
    p: int,
    frac_train: float,
    steps: int,
    d_model: int,
    lr: float,
    weight_decay: float,
    seed: int,
    log_every: int,
    progress: bool,
) -> GrokRun:
    from transformers import GPT2Config, GPT2LMHeadModel

    from .organisms.train import train_full_batch

    torch.manual_seed(seed)
    tokens, labels = all_pairs(p)
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n_train = int(round(frac_train * p * p))
    train_idx, test_idx = perm[:n_train], perm[n_train:]
    cfg = GPT2Config(
        vocab_size=p + 1,
        n_positions=3,
        n_embd=d_model,
        n_layer=1,
        n_head=4,
        n_inner=4 * d_model,
        activation_function="relu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    model = GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    data = tokens[train_idx], labels[train_idx], tokens[test_idx], labels[test_idx]
    history, _ = train_full_batch(
        model,
        data,
        opt,
        steps,
        log_every,
        grokked=1.0,
        extra_steps=lambda step: max(100, step // 4),
        desc=f"grokking p={p}",
        progress=progress,
    )
    return GrokRun(model, p, train_idx, test_idx, history)
