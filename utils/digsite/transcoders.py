"""Transcoders: a sparse, readable stand-in for each MLP block (chapter 7).

A transcoder reads what an MLP reads and predicts what it writes (Dunefsky et al. 2024,
"Transcoders Find Interpretable LLM Feature Circuits"). For block l:

    x      = ln2(resid_mid)                       (d_model,)  the MLP's input, norm weight and bias applied
    pre    = x @ W_enc + b_enc                    (d_tc,)
    f      = TopK_k(ReLU(pre))                    (d_tc,)     at most k non-zero features
    y_hat  = f @ W_dec + b_dec + x @ W_skip       (d_model,)  the prediction of hook_mlp_out

The linear skip (a "skip transcoder") takes the part of the MLP that is nearly linear, so
the features are left for what is not. Where a feature fires, its value equals its
pre-activation, a linear function of the residual stream once the norm's scale is frozen:
that is what makes attribution graphs exact (`digsite.attribution`).

Shapes: W_enc (n_layers, d_model, d_tc), b_enc (n_layers, d_tc), W_dec (n_layers, d_tc, d_model)
with unit-norm rows, b_dec (n_layers, d_model), W_skip (n_layers, d_model, d_model).

The shipped set for the toy-language organism is trained with

    python -m digsite.organisms train toylang-transcoders [--quick] [--out DIR]

(default DIR runs/toylang-transcoders; the shipped set is the package's weights/toylang-transcoders,
gated by `python -m digsite.organisms evaluate toylang-transcoders`) and loaded with
`load_transcoders("toylang")`. Position 0 (BOS) is left out of training and
never replaced: it is the same in every prompt, so its MLP output is a constant.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .solutions.ch07 import transcoder_loss  # exercise 7.2's answer, written once in course/07
from .threads import one_thread

if TYPE_CHECKING:
    from .hooks import HookedModel

WEIGHTS_DIR = Path(__file__).parent / "organisms" / "weights"


def transcoder_folder(name: str = "toylang") -> Path:
    """The package folder of the shipped transcoders for model `name`: weights/NAME-transcoders
    (transcoders.safetensors, transcoders.json with config, recipe and metrics, card.md)."""
    return WEIGHTS_DIR / f"{name}-transcoders"


@dataclass
class TranscoderConfig:
    """Sizes and sparsity of a set of per-layer transcoders, and the model they belong to."""

    n_layers: int
    d_model: int
    d_tc: int
    k: int
    model_name: str = "toylang"


@dataclass
class TranscoderRecipe:
    """How the shipped transcoders are trained (the `train toylang-transcoders` command)."""

    model_name: str = "toylang"
    d_tc: int = 512
    k: int = 16
    n_docs: int = 2000
    seq_len: int = 64
    steps: int = 2500
    batch_size: int = 512
    lr: float = 2e-3
    resample_every: int = 250
    seed: int = 0

    def quick(self) -> TranscoderRecipe:
        """A smoke-test version: tiny sizes, a few steps (not a usable set of transcoders)."""
        return TranscoderRecipe(
            self.model_name,
            d_tc=64,
            k=4,
            n_docs=40,
            seq_len=32,
            steps=20,
            batch_size=128,
            lr=self.lr,
            resample_every=10,
            seed=self.seed,
        )


class Transcoders(nn.Module):
    """One TopK skip-transcoder per MLP block, stacked along a leading layer dimension."""

    def __init__(self, cfg: TranscoderConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        L, d, n = cfg.n_layers, cfg.d_model, cfg.d_tc
        W_dec = torch.randn(L, n, d, generator=gen)
        W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
        self.W_enc = nn.Parameter(W_dec.transpose(1, 2).clone())
        self.b_enc = nn.Parameter(torch.zeros(L, n))
        self.W_dec = nn.Parameter(W_dec)
        self.b_dec = nn.Parameter(torch.zeros(L, d))
        self.W_skip = nn.Parameter(torch.zeros(L, d, d))

    def pre_acts(self, x: Tensor, layer: int) -> Tensor:
        """MLP input (..., d_model) of block `layer` -> feature pre-activations (..., d_tc)."""
        return x @ self.W_enc[layer] + self.b_enc[layer]

    def encode(self, x: Tensor, layer: int) -> Tensor:
        """MLP input (..., d_model) -> feature activations (..., d_tc): the k largest ReLU'd pre-activations."""
        pre = torch.relu(self.pre_acts(x, layer))
        values, idx = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, values)

    def decode(self, f: Tensor, x: Tensor, layer: int) -> Tensor:
        """Features (..., d_tc) and the MLP input (..., d_model) -> predicted MLP output (..., d_model)."""
        return f @ self.W_dec[layer] + self.b_dec[layer] + x @ self.W_skip[layer]

    def forward(self, x: Tensor, layer: int) -> tuple[Tensor, Tensor]:
        """MLP input (..., d_model) -> (features (..., d_tc), predicted MLP output (..., d_model))."""
        f = self.encode(x, layer)
        return f, self.decode(f, x, layer)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale every decoder row to unit norm and its encoder column by the same factor (same outputs)."""
        norms = self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # (L, n, 1)
        self.W_dec.div_(norms)
        self.W_enc.mul_(norms.transpose(1, 2))
        self.b_enc.mul_(norms[..., 0])


# --------------------------------------------------------------------------------------
# The MLP's input and output, read from a hooked model
# --------------------------------------------------------------------------------------


def mlp_input(model: HookedModel, resid_mid: Tensor, layer: int) -> Tensor:
    """What block `layer`'s MLP reads: its ln2 applied to resid_mid (..., d_model), weight and bias included.

    Computed from the norm module's parameters (not by calling it, which would fire its
    hooks), so it does not depend on what a hook name records. LayerNorm models only.
    """
    norm = model.norm_module(layer, "ln2")
    if not isinstance(norm, nn.LayerNorm):
        raise TypeError(f"Transcoders here expect a LayerNorm before the MLP (GPT-2 style); got {type(norm).__name__}.")
    return nn.functional.layer_norm(resid_mid, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def mlp_names(layer: int) -> tuple[str, str]:
    """The hook names a transcoder of block `layer` reads from and predicts."""
    return f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.hook_mlp_out"


@torch.no_grad()
def collect_mlp_io(model: HookedModel, tokens: Tensor, batch: int = 64) -> tuple[Tensor, Tensor]:
    """Every block's MLP input and output on tokens (n_seq, pos), BOS dropped.

    Returns (inputs, outputs), each (n_layers, n_seq * (pos - 1), d_model).
    """
    L = model.cfg.n_layers
    names = [n for l in range(L) for n in mlp_names(l)]
    xs: list[list[Tensor]] = [[] for _ in range(L)]
    ys: list[list[Tensor]] = [[] for _ in range(L)]
    with one_thread():
        for chunk in tokens.split(batch):
            _, cache = model.run_with_cache(chunk, names_filter=names)
            for l in range(L):
                rmid, out = (cache[n][:, 1:] for n in mlp_names(l))
                xs[l].append(mlp_input(model, rmid, l).flatten(0, 1).float())
                ys[l].append(out.flatten(0, 1).float())
    return torch.stack([torch.cat(x) for x in xs]), torch.stack([torch.cat(y) for y in ys])


# --------------------------------------------------------------------------------------
# Splicing into the model and the metrics
# --------------------------------------------------------------------------------------


def splice_hooks(
    model: HookedModel,
    tc: Transcoders,
    layers: list[int] | None = None,
    edit: Callable[[Tensor, int], Tensor] | None = None,
) -> list[tuple[str, Callable]]:
    """Forward hooks replacing each chosen block's MLP output by its transcoder's prediction (BOS kept).

    `edit(features, layer) -> features` may change the features (batch, pos, d_tc) before they
    are decoded (ablation, steering). Use as `with model.hooks(splice_hooks(model, tc)): ...`.
    """
    layers = list(range(tc.cfg.n_layers)) if layers is None else layers
    inputs: dict[int, Tensor] = {}
    hooks: list[tuple[str, Callable]] = []
    for layer in layers:
        mid_name, out_name = mlp_names(layer)

        def keep(x: Tensor, hook, layer: int = layer) -> None:
            inputs[layer] = mlp_input(model, x, layer)

        def replace(y: Tensor, hook, layer: int = layer) -> Tensor:
            x = inputs.pop(layer)
            f = tc.encode(x.to(tc.W_enc.dtype), layer)
            if edit is not None:
                f = edit(f, layer)
            y_hat = tc.decode(f, x.to(tc.W_enc.dtype), layer).to(y.dtype)
            return torch.cat([y[:, :1], y_hat[:, 1:]], dim=1)

        hooks += [(mid_name, keep), (out_name, replace)]
    return hooks


def _mean_hooks(means: Tensor) -> list[tuple[str, Callable]]:
    def hook(y: Tensor, hook) -> Tensor:
        out = means[hook.layer()].to(y.dtype).expand_as(y).clone()
        out[:, :1] = y[:, :1]
        return out

    return [(mlp_names(l)[1], hook) for l in range(len(means))]


@torch.no_grad()
def evaluate_transcoders(model: HookedModel, tc: Transcoders, tokens: Tensor) -> dict[str, object]:
    """Every metric of the card, on tokens (n_seq, pos) the transcoders were not trained on.

    Per layer: fraction of the MLP output's variance explained, L0 (mean active features per
    token), dead fraction (features that never fire on these tokens). With ALL MLPs replaced
    at once: the next-token loss, and the fraction of loss recovered against two floors,
    every MLP output zero-ablated and every MLP output replaced by its mean (BOS kept in all).
    """
    xs, ys = collect_mlp_io(model, tokens)
    fve, l0, dead = [], [], []
    for l in range(tc.cfg.n_layers):
        f, y_hat = tc(xs[l], l)
        fve.append(1 - transcoder_loss(ys[l], y_hat).item())
        l0.append((f > 0).float().sum(-1).mean().item())
        dead.append(((f > 0).sum(0) == 0).float().mean().item())
    with one_thread():
        clean = model(tokens, return_type="loss").item()
        with model.hooks(splice_hooks(model, tc)):
            spliced = model(tokens, return_type="loss").item()
        with model.hooks([(mlp_names(l)[1], _zero_hook) for l in range(tc.cfg.n_layers)]):
            zero = model(tokens, return_type="loss").item()
        with model.hooks(_mean_hooks(ys.mean(1))):
            mean = model(tokens, return_type="loss").item()
    return {
        "fve_per_layer": [round(v, 4) for v in fve],
        "min_fve": min(fve),
        "l0_per_layer": [round(v, 2) for v in l0],
        "dead_fraction_per_layer": [round(v, 4) for v in dead],
        "max_dead_fraction": max(dead),
        "ce_clean": clean,
        "ce_all_replaced": spliced,
        "ce_all_zero_ablated": zero,
        "ce_all_mean_ablated": mean,
        "ce_recovered_vs_zero": (zero - spliced) / (zero - clean),
        "ce_recovered_vs_mean": (mean - spliced) / (mean - clean),
    }


def _zero_hook(y: Tensor, hook) -> Tensor:
    out = torch.zeros_like(y)
    out[:, :1] = y[:, :1]
    return out


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@torch.no_grad()
def _resample(tc: Transcoders, layer: int, x: Tensor, y: Tensor, dead: Tensor, gen: torch.Generator) -> int:
    """Point dead features of one layer at inputs the transcoder predicts badly; returns how many.

    A resampled feature reads the direction of one such input (centred) and writes the direction
    of its error; its encoder is scaled so that on that input it fires as strongly as a typical
    live feature (so it can win a place in the top k without swamping the prediction).
    """
    n = int(dead.sum())
    if n == 0:
        return 0
    f, y_hat = tc(x, layer)
    err = y - y_hat
    w = err.pow(2).sum(-1)
    idx = torch.multinomial(w / w.sum(), n, replacement=n > len(x), generator=gen)
    typical = f[f > 0].mean() if (f > 0).any() else torch.tensor(1.0)
    mean = x.mean(0)
    xin = x[idx] - mean  # (n, d)
    norms = xin.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    tc.W_dec[layer][dead] = err[idx] / err[idx].norm(dim=-1, keepdim=True).clamp_min(1e-8)
    tc.W_enc[layer][:, dead] = (xin / norms * (typical / norms)).T
    tc.b_enc[layer][dead] = -(mean @ tc.W_enc[layer][:, dead])
    return n


def train_transcoders(
    tc: Transcoders, xs: Tensor, ys: Tensor, recipe: TranscoderRecipe, progress: bool = True
) -> dict[str, list[float]]:
    """Adam on the normalised MSE of every layer at once; xs, ys: (n_layers, tokens, d_model).

    b_dec starts at the mean output, W_skip at the least-squares linear map from input to
    output (the transcoder's features then start on what a linear map misses). Features
    that did not fire for `resample_every` steps are resampled during the first 3/4 of
    training; decoder rows are kept at unit norm. The learning rate decays linearly over the
    last 20%.
    """
    gen = torch.Generator().manual_seed(recipe.seed)
    L, N, _ = xs.shape
    with torch.no_grad():
        tc.b_dec.copy_(ys.mean(1))
        for l in range(L):  # least squares on centred data, a small ridge for stability
            xc, yc = xs[l] - xs[l].mean(0), ys[l] - ys[l].mean(0)
            gram = xc.T @ xc + 1e-3 * len(xc) * torch.eye(xc.shape[1])
            tc.W_skip[l] = torch.linalg.solve(gram, xc.T @ yc)
            tc.b_dec[l] = ys[l].mean(0) - xs[l].mean(0) @ tc.W_skip[l]
    opt = torch.optim.Adam(tc.parameters(), lr=recipe.lr)
    steps = recipe.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, 5 * (1 - s / steps)))
    fired = torch.zeros(L, tc.cfg.d_tc, dtype=torch.bool)
    history: dict[str, list[float]] = {"loss": [], "resampled": []}
    bar = tqdm(range(steps), disable=not progress, desc="transcoders", mininterval=5)
    with one_thread():
        for step in bar:
            idx = torch.randint(0, N, (recipe.batch_size,), generator=gen)
            loss = torch.zeros(())
            for l in range(L):
                f, y_hat = tc(xs[l, idx], l)
                loss = loss + transcoder_loss(ys[l, idx], y_hat)
                fired[l] |= (f > 0).any(0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tc.normalize_decoder()
            if recipe.resample_every and (step + 1) % recipe.resample_every == 0 and step < 3 * steps // 4:
                history["resampled"].append(
                    sum(_resample(tc, l, xs[l, idx], ys[l, idx], ~fired[l], gen) for l in range(L))
                )
                fired.zero_()
            history["loss"].append(loss.item() / L)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{loss.item() / L:.4f}")
                if not progress or step % 500 == 0:
                    print(f"step {step} normalised mse {loss.item() / L:.4f}", flush=True)
    return history


# --------------------------------------------------------------------------------------
# Saving, loading, the card and the gate
# --------------------------------------------------------------------------------------

#: Thresholds of `python -m digsite.organisms evaluate`: metric -> (">=" or "<=", value). Chosen from the
#: shipped set's measurements (CE recovered 0.993 against both floors, variance explained 0.961-0.997,
#: dead fraction 0.13-0.67) with a margin. Most layer-0 and layer-1 features never fire on the
#: evaluation texts: those MLPs see little more than the token, and the toy vocabulary has 348.
THRESHOLDS: dict[str, tuple[str, float]] = {
    "ce_recovered_vs_zero": (">=", 0.97),
    "ce_recovered_vs_mean": (">=", 0.97),
    "min_fve": (">=", 0.93),
    "max_dead_fraction": ("<=", 0.80),
}
EVAL_DOCS, EVAL_SEED = 200, 3_000_000


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_transcoders(tc: Transcoders, out: Path, card: dict) -> None:
    """Write out/transcoders.safetensors, out/transcoders.json (config + card) and out/card.md."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = out / "transcoders.safetensors"
    save_file({k: v.detach().contiguous() for k, v in tc.state_dict().items()}, str(weights))
    card = {**card, "sha256": _sha256(weights)}
    (out / "transcoders.json").write_text(json.dumps({"config": asdict(tc.cfg), **card}, indent=2) + "\n")
    (out / "card.md").write_text(card_markdown(tc.cfg, card))


def card_markdown(cfg: TranscoderConfig, card: dict) -> str:
    """The human-readable card: what the transcoders are, how they were trained, what they score."""
    m = card.get("metrics", {})
    lines = [
        f"# Transcoders for `{cfg.model_name}`",
        "",
        (
            f"One TopK skip-transcoder per MLP block ({cfg.n_layers} layers): MLP input (ln2 output, d_model "
            f"{cfg.d_model}) -> {cfg.d_tc} features, k = {cfg.k} active per token -> MLP output, plus a linear skip. "
            "Position 0 (BOS) is never replaced."
        ),
        "",
        f"Trained by `{card.get('command', '?')}` in {card.get('train_seconds', '?')} s (CPU, 1 thread).",
        "",
        f"- recipe: {json.dumps(card.get('recipe', {}))}",
        f"- data: {card.get('data', '')}",
        f"- evaluation: {card.get('eval', '')}",
        f"- transcoders.safetensors sha256: `{card.get('sha256', '?')}`",
        "",
        "## Metrics",
        "",
        "| layer | variance explained | L0 | dead fraction |",
        "|---|---|---|---|",
    ]
    for l, (f, k0, d) in enumerate(
        zip(m.get("fve_per_layer", []), m.get("l0_per_layer", []), m.get("dead_fraction_per_layer", []))
    ):
        lines.append(f"| {l} | {f:.3f} | {k0:.1f} | {d:.3f} |")
    if m:
        lines += [
            "",
            "With every MLP replaced at once (BOS kept):",
            "",
            (
                f"- next-token loss: clean {m['ce_clean']:.4f}, replaced {m['ce_all_replaced']:.4f}, "
                f"all MLPs zero-ablated {m['ce_all_zero_ablated']:.4f}, all MLPs mean-ablated {m['ce_all_mean_ablated']:.4f}"
            ),
            (
                f"- CE loss recovered: {m['ce_recovered_vs_zero']:.3f} against zero ablation, "
                f"{m['ce_recovered_vs_mean']:.3f} against mean ablation"
            ),
            "",
            "Gate (`python -m digsite.organisms evaluate toylang-transcoders`): "
            + ", ".join(f"{k} {op} {v}" for k, (op, v) in THRESHOLDS.items()),
            "",
        ]
    return "\n".join(lines)


def transcoder_card(name: str = "toylang", path: Path | None = None) -> dict:
    """The JSON card (config, command, recipe, metrics, sha256) of a shipped set of transcoders."""
    folder = path or transcoder_folder(name)
    if not (folder / "transcoders.json").exists():
        if path is not None:
            raise KeyError(f"No transcoders in {folder} (no transcoders.json): train them there first.")
        shipped = sorted(p.name.removesuffix("-transcoders") for p in WEIGHTS_DIR.glob("*-transcoders"))
        raise KeyError(f"No shipped transcoders for {name!r}. Shipped: {', '.join(shipped) or '(none)'}")
    return json.loads((folder / "transcoders.json").read_text())


def load_transcoders(name: str = "toylang", path: Path | None = None) -> Transcoders:
    """A shipped set of transcoders by model name (or from a folder written by the train command), eval mode."""
    from safetensors.torch import load_file

    folder = path or transcoder_folder(name)
    card = transcoder_card(name, folder)
    tc = Transcoders(TranscoderConfig(**card["config"]))
    tc.load_state_dict(load_file(str(folder / "transcoders.safetensors")))
    for p in tc.parameters():
        p.requires_grad_(False)
    return tc.eval()


def eval_tokens(model: HookedModel, seq_len: int = 64) -> Tensor:
    """The card's evaluation tokens: EVAL_DOCS fresh toy-language documents (never trained on), BOS first."""
    from .sae import toylang_tokens

    return toylang_tokens(model, EVAL_DOCS, seed=EVAL_SEED, seq_len=seq_len)


def check_thresholds(metrics: dict) -> list[str]:
    """Failures against THRESHOLDS ("metric = value, want >= x"); [] when all pass."""
    fails = []
    for k, (op, v) in THRESHOLDS.items():
        x = metrics.get(k)
        if x is None or not (x >= v if op == ">=" else x <= v):
            fails.append(f"{k} = {x}, want {op} {v}")
    return fails


def evaluate_folder(path: Path | None = None, model_name: str = "toylang") -> dict[str, object]:
    """Metrics of the transcoders in `path` (default: the shipped ones) on the card's evaluation tokens,
    plus the sha256 of the weights file."""
    from . import load_model

    folder = path or transcoder_folder(model_name)
    tc = load_transcoders(model_name, folder)
    model = load_model(tc.cfg.model_name, device="cpu")
    m = evaluate_transcoders(model, tc, eval_tokens(model))
    m["sha256"] = _sha256(folder / "transcoders.safetensors")
    return m


def train_and_save(out: Path, recipe: TranscoderRecipe, command: str) -> dict[str, object]:
    """Collect MLP inputs/outputs, train, evaluate and save with a card; returns the metrics."""
    from . import load_model
    from .sae import toylang_tokens

    torch.manual_seed(recipe.seed)
    model = load_model(recipe.model_name, device="cpu")
    t0 = time.time()
    tokens = toylang_tokens(model, recipe.n_docs, seed=1_000_000, seq_len=recipe.seq_len)
    xs, ys = collect_mlp_io(model, tokens)
    print(f"collected {xs.shape[1]} tokens per layer in {time.time() - t0:.0f} s", flush=True)
    tc = Transcoders(
        TranscoderConfig(model.cfg.n_layers, model.cfg.d_model, recipe.d_tc, recipe.k, recipe.model_name),
        seed=recipe.seed,
    )
    train_transcoders(tc, xs, ys, recipe)
    wall = time.time() - t0
    for p in tc.parameters():
        p.requires_grad_(False)
    tc.eval()
    metrics = evaluate_transcoders(model, tc, eval_tokens(model))
    card = {
        "command": command,
        "recipe": asdict(recipe),
        "train_seconds": round(wall, 1),
        "data": f"{recipe.n_docs} toy-language documents (toylang_texts, seed 1000000: never trained on by the "
        f"organism), cut to {recipe.seq_len} tokens, BOS dropped",
        "eval": f"{EVAL_DOCS} fresh documents (seed {EVAL_SEED}), 64 tokens each",
        "metrics": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
    }
    save_transcoders(tc, out, card)
    return metrics
