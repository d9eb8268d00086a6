"""Sparse autoencoders on a model's activations: the model, training, metrics, dashboards, steering.

An SAE rewrites an activation x (d_in,) as a sparse, non-negative combination of learned
directions: f = act(W_enc^T (x - b_dec) + b_enc) (d_sae,), x_hat = f @ W_dec + b_dec, where
every row of W_dec (a latent's decoder direction, a column of the decoder matrix in
x_hat = W_d f + b_d) has unit norm. Two activations: ReLU with an L1 penalty on f, or TopK
(keep the k largest, Gao et al. 2024), which sets L0 directly.

Shapes: W_enc (d_in, d_sae), b_enc (d_sae,), W_dec (d_sae, d_in), b_dec (d_in,),
activations (..., d_in), latents (..., d_sae).

The shipped SAE for the toy-language model is trained with

    python -m digsite.sae train            # writes organisms/weights/saes/toylang.safetensors + .json

and loaded with `load_sae("toylang")`.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .threads import one_thread

SAE_DIR = Path(__file__).parent / "organisms" / "weights" / "saes"


# --------------------------------------------------------------------------------------
# The SAE
# --------------------------------------------------------------------------------------


@dataclass
class SAEConfig:
    """What an SAE is: sizes, activation (k=None: ReLU + L1; else TopK), and where it reads from."""

    d_in: int
    d_sae: int
    k: int | None = None
    l1_coeff: float = 0.0
    model_name: str = ""
    hook_name: str = ""


def normalize_rows(W: Tensor) -> Tensor:
    """Each row scaled to unit L2 norm. W: (n, d) -> (n, d)."""
    return W / W.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def topk_activation(pre: Tensor, k: int) -> Tensor:
    """Keep the k largest entries of each token's pre-activations (after a ReLU), zero the rest.

    pre: (..., d_sae) -> (..., d_sae) with at most k non-zero entries per token.
    """
    values, indices = torch.relu(pre).topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, values)


class SAE(nn.Module):
    """A sparse autoencoder with a unit-norm decoder (rows of W_dec), ReLU+L1 or TopK."""

    def __init__(self, cfg: SAEConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        W_dec = normalize_rows(torch.randn(cfg.d_sae, cfg.d_in, generator=gen))
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    @property
    def W_dec_normalized(self) -> Tensor:
        """Decoder directions (d_sae, d_in), each of unit norm."""
        return normalize_rows(self.W_dec)

    def pre_acts(self, x: Tensor) -> Tensor:
        """(..., d_in) -> encoder pre-activations (..., d_sae)."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> Tensor:
        """(..., d_in) -> latent activations (..., d_sae), non-negative and sparse."""
        pre = self.pre_acts(x)
        return torch.relu(pre) if self.cfg.k is None else topk_activation(pre, self.cfg.k)

    def decode(self, f: Tensor) -> Tensor:
        """(..., d_sae) -> reconstruction (..., d_in)."""
        return f @ self.W_dec_normalized + self.b_dec

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(..., d_in) -> (latents (..., d_sae), reconstruction (..., d_in))."""
        f = self.encode(x)
        return f, self.decode(f)


def sae_loss(x: Tensor, f: Tensor, x_hat: Tensor, l1_coeff: float) -> tuple[Tensor, Tensor, Tensor]:
    """(total, reconstruction, sparsity): MSE per element + l1_coeff * mean over tokens of sum_i |f_i|.

    x, x_hat: (batch, d_in); f: (batch, d_sae), the latent activations (after the ReLU).
    """
    recon = (x_hat - x).pow(2).mean()
    sparsity = f.abs().sum(-1).mean()
    return recon + l1_coeff * sparsity, recon, sparsity


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def l0_per_token(f: Tensor) -> Tensor:
    """Mean number of non-zero latents per token. f: (..., d_sae) -> scalar tensor."""
    return (f != 0).float().sum(-1).mean()


def explained_variance(x: Tensor, x_hat: Tensor) -> Tensor:
    """1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over tokens. x, x_hat: (tokens, d_in) -> scalar."""
    resid = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0, keepdim=True)).pow(2).sum()
    return 1 - resid / total


def latent_frequencies(f: Tensor) -> Tensor:
    """Fraction of tokens on which each latent fires. f: (tokens, d_sae) -> (d_sae,)."""
    return (f > 0).float().mean(0)


def dead_and_dense(freq: Tensor, dense_threshold: float = 0.1) -> tuple[float, float]:
    """(fraction of latents that never fire, fraction that fire on more than dense_threshold of tokens)."""
    return (freq == 0).float().mean().item(), (freq > dense_threshold).float().mean().item()


def splice_hook(sae: SAE, skip_bos: bool = True) -> Callable[[Tensor, object], Tensor]:
    """A forward hook replacing the activation (batch, pos, d_in) by the SAE's reconstruction (BOS kept)."""

    def hook(x: Tensor, hook: object) -> Tensor:
        out = sae(x)[1].to(x.dtype)
        if skip_bos:
            out = torch.cat([x[:, :1], out[:, 1:]], dim=1)
        return out

    return hook


def zero_ablate_hook(skip_bos: bool = True) -> Callable[[Tensor, object], Tensor]:
    """A forward hook replacing the activation (batch, pos, d_in) by zeros (BOS kept)."""

    def hook(x: Tensor, hook: object) -> Tensor:
        out = torch.zeros_like(x)
        if skip_bos:
            out[:, :1] = x[:, :1]
        return out

    return hook


def ce_losses(model, sae: SAE, tokens: Tensor, hook_name: str) -> tuple[float, float, float]:
    """Next-token loss (clean, with the SAE spliced in at hook_name, with that activation zero-ablated).

    tokens: (batch, pos) without padding. The BOS position is left alone in both interventions.
    """
    with torch.no_grad():
        clean = model(tokens, return_type="loss").item()
        with model.hooks(fwd_hooks=[(hook_name, splice_hook(sae))]):
            spliced = model(tokens, return_type="loss").item()
        with model.hooks(fwd_hooks=[(hook_name, zero_ablate_hook())]):
            zero = model(tokens, return_type="loss").item()
    return clean, spliced, zero


def ce_loss_recovered(model, sae: SAE, tokens: Tensor, hook_name: str) -> float:
    """(CE_zero - CE_sae) / (CE_zero - CE_clean): 1 when splicing costs nothing, 0 when it is as bad as zeros."""
    clean, spliced, zero = ce_losses(model, sae, tokens, hook_name)
    return (zero - spliced) / (zero - clean)


@torch.no_grad()
def evaluate_sae(sae: SAE, acts: Tensor, model=None, tokens: Tensor | None = None, batch: int = 8192) -> dict[str, float]:
    """Every metric practitioners report, on held-out activations (tokens, d_in) and optionally the model.

    Returns mse, explained_variance, l0 (mean per token), dead / dense fractions, and, with
    a model and tokens (batch, pos), the three CE losses and the CE loss recovered.
    """
    fs, x_hats = [], []
    for chunk in acts.split(batch):
        f, x_hat = sae(chunk)
        fs.append(f)
        x_hats.append(x_hat)
    f, x_hat = torch.cat(fs), torch.cat(x_hats)
    dead, dense = dead_and_dense(latent_frequencies(f))
    out = {
        "mse": (x_hat - acts).pow(2).mean().item(),
        "explained_variance": explained_variance(acts, x_hat).item(),
        "l0": l0_per_token(f).item(),
        "dead_fraction": dead,
        "dense_fraction": dense,
    }
    if model is not None and tokens is not None:
        clean, spliced, zero = ce_losses(model, sae, tokens, sae.cfg.hook_name)
        out |= {"ce_clean": clean, "ce_sae": spliced, "ce_zero_ablation": zero,
                "ce_loss_recovered": (zero - spliced) / (zero - clean)}
    return out


# --------------------------------------------------------------------------------------
# Data: activations from an organism
# --------------------------------------------------------------------------------------


def toylang_tokens(model, n_docs: int, seed: int = 1_000_000, seq_len: int = 64) -> Tensor:
    """(n, seq_len) token ids: BOS + the first seq_len - 1 tokens of toy-language documents, no padding.

    The organism was trained on `toylang_texts(32, seed=step)` for steps 0..3999; seeds of a
    million and more give documents it never saw. Documents shorter than seq_len are dropped.
    """
    from .organisms.data import toylang_texts

    tokens = model.to_tokens(toylang_texts(n_docs, seed=seed))
    pad = model.tokenizer.pad_token_id
    full = (tokens[:, :seq_len] != pad).all(dim=1) if tokens.shape[1] >= seq_len else torch.zeros(len(tokens), dtype=torch.bool)
    return tokens[full, :seq_len]


@torch.no_grad()
def collect_activations(model, tokens: Tensor, hook_name: str, batch: int = 64, skip_bos: bool = True) -> Tensor:
    """Activations at hook_name for every token: (n_seq, pos, d) -> flattened (n_seq * (pos - 1), d), BOS dropped."""
    out = []
    with one_thread():
        for chunk in tokens.split(batch):
            _, cache = model.run_with_cache(chunk, names_filter=[hook_name])
            x = cache[hook_name]
            out.append(x[:, 1:] if skip_bos else x)
    return torch.cat(out).flatten(0, 1).float()


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@torch.no_grad()
def resample_dead_latents(sae: SAE, x: Tensor, dead: Tensor, gen: torch.Generator) -> int:
    """Point each dead latent at an input the SAE reconstructs badly (Anthropic's resampling, simplified).

    x: (batch, d_in) a batch of activations; dead: (d_sae,) bool. New decoder rows are the
    normalised reconstruction errors of inputs drawn in proportion to their squared error;
    the encoder rows copy them, scaled to the mean alive encoder norm (a fifth of it for a ReLU
    SAE, where any positive pre-activation fires; all of it for TopK, where a resampled latent
    must compete for the top k), and their biases are reset to 0.
    Returns how many latents were resampled.
    """
    n = int(dead.sum())
    if n == 0:
        return 0
    err = x - sae(x)[1]
    weights = err.pow(2).sum(-1)
    idx = torch.multinomial(weights / weights.sum(), n, replacement=n > len(x), generator=gen)
    directions = normalize_rows(err[idx])
    alive_norm = sae.W_enc[:, ~dead].norm(dim=0).mean() if (~dead).any() else torch.tensor(1.0)
    sae.W_dec[dead] = directions
    sae.W_enc[:, dead] = directions.T * alive_norm * (0.2 if sae.cfg.k is None else 1.0)
    sae.b_enc[dead] = 0.0
    return n


def train_sae(
    sae: SAE,
    acts: Tensor,
    steps: int = 2000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    resample_every: int | None = None,
    l1_warmup: float = 0.1,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Adam on random minibatches of acts (tokens, d_in); returns the loss history.

    b_dec starts at the mean activation. The L1 coefficient ramps up linearly over the
    first `l1_warmup` fraction of steps; the learning rate decays linearly over the last 20%.
    With `resample_every`, latents that did not fire during the last `resample_every`
    steps are resampled (during the first three quarters of training).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, 5 * (1 - s / steps)))
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    history: dict[str, list[float]] = {"loss": [], "mse": [], "l0": [], "resampled": []}
    bar = tqdm(range(steps), disable=not progress, desc=f"SAE {'TopK' if sae.cfg.k else 'L1'} d_sae={sae.cfg.d_sae}")
    with one_thread():
        for step in bar:
            x = acts[torch.randint(0, len(acts), (batch_size,), generator=gen)]
            f, x_hat = sae(x)
            l1 = sae.cfg.l1_coeff * min(1.0, step / max(1, l1_warmup * steps))
            loss, recon, _ = sae_loss(x, f, x_hat, l1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            fired |= (f > 0).any(0)
            if resample_every and (step + 1) % resample_every == 0 and step < 3 * steps // 4:
                history["resampled"].append(resample_dead_latents(sae, x, ~fired, gen))
                fired.zero_()
            history["loss"].append(loss.item())
            history["mse"].append(recon.item())
            history["l0"].append(l0_per_token(f).item())
            if step % 100 == 0:
                bar.set_postfix(mse=f"{recon.item():.4f}", l0=f"{history['l0'][-1]:.1f}")
    return history


# --------------------------------------------------------------------------------------
# Saving and loading the shipped SAE
# --------------------------------------------------------------------------------------


def save_sae(sae: SAE, path: str | Path, card: dict) -> None:
    """Write `path`.safetensors (the weights) and `path`.json (config + card: command, metrics, sha256).

    The decoder is saved as the SAE computes with it, rows of unit norm (`W_dec_normalized`):
    training lets the raw rows drift, and a tool that reads the file without re-normalising
    must still get the same reconstruction. Latents are unchanged, so the SAE is the same function.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in sae.state_dict().items()}
    state["W_dec"] = sae.W_dec_normalized.detach().contiguous()
    weights = path.with_suffix(".safetensors")
    save_file(state, str(weights))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    path.with_suffix(".json").write_text(json.dumps({"config": asdict(sae.cfg), **card, "sha256": digest}, indent=2) + "\n")


def sae_card(name: str = "toylang") -> dict:
    """The JSON card of a shipped SAE: config, training command, metrics."""
    path = SAE_DIR / f"{name}.json"
    if not path.exists():
        shipped = sorted(p.stem for p in SAE_DIR.glob("*.json")) if SAE_DIR.exists() else []
        raise KeyError(f"No shipped SAE called {name!r}. Shipped: {', '.join(shipped) or '(none)'}")
    return json.loads(path.read_text())


def load_sae(name: str = "toylang") -> SAE:
    """A shipped SAE by name (see `SAE_DIR`), in eval mode."""
    from safetensors.torch import load_file

    card = sae_card(name)
    sae = SAE(SAEConfig(**card["config"]))
    sae.load_state_dict(load_file(str(SAE_DIR / f"{name}.safetensors")))
    return sae.eval()


# --------------------------------------------------------------------------------------
# Reading latents: top activations, logit effects, labels against the generator's categories
# --------------------------------------------------------------------------------------


def top_activations(latent_acts: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """The k largest activations of one latent: (seq indices (k,), pos indices (k,), values (k,)).

    latent_acts: (n_seq, pos), the latent's activation on every token of a batch.
    """
    values, flat = latent_acts.flatten().topk(k)
    return flat // latent_acts.shape[1], flat % latent_acts.shape[1], values


def logit_effects(direction: Tensor, W_U: Tensor, ln_weight: Tensor | None = None) -> Tensor:
    """How a residual direction (d_model,) moves every logit (d_vocab,), through the final LayerNorm.

    The LayerNorm centres the vector and multiplies it by its weight (its scale is a positive
    number common to all logits, left out); W_U: (d_model, d_vocab).
    """
    d = direction - direction.mean()
    if ln_weight is not None:
        d = d * ln_weight
    return d @ W_U


def word_categories() -> dict[str, str]:
    """Every toy-language word -> its category in the generator (name, animal, number, place, ...)."""
    from .organisms import data as D

    groups: dict[str, list[str]] = {
        "name": D.NAMES, "place": D.PLACES, "object": D.OBJECTS, **{f"{c} (member)": ms for c, ms in D.CATEGORIES.items()},
        "category word": list(D.CATEGORIES), "colour": D.COLORS, "city": D.CITIES, "country": D.COUNTRIES,
        "number": D.NUMBER_WORDS, "give verb": D.GIVE_VERBS, "talk verb": D.TALK_VERBS, "move verb": D.MOVE_VERBS,
        "activity": D.ACTIVITIES, "event": D.EVENTS, "adjective": D.ADJECTIVES, "time": D.TIMES, "day": D.DAYS,
        "season": D.SEASONS,
    }
    out: dict[str, str] = {}
    for cat, words in groups.items():
        for w in words:
            out.setdefault(w, cat)
    out["animal"] = "category word"  # "animal" is both a category word and never a member
    return out


def ioi_roles(str_tokens: Sequence[str]) -> list[str | None]:
    """The indirect-object role of each token of a toy-language sequence, None elsewhere.

    Our grammar makes them exact: "S2" is a name right before a give or talk verb, "END" is a
    "to" right before a name, "IO answer" the name after it; "S1" / "IO" are the names of the
    "A and B" pair, told apart by which one comes back as S2.
    """
    from .organisms import data as D

    names, verbs = set(D.NAMES), set(D.GIVE_VERBS) | set(D.TALK_VERBS)
    toks = [t.strip() for t in str_tokens]
    roles: list[str | None] = [None] * len(toks)
    pair_at: list[int] = []
    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        prev = toks[i - 1] if i > 0 else ""
        if t in names and (nxt == "and" or prev == "and"):
            pair_at.append(i)
        if t in names and nxt in verbs:
            roles[i] = "S2"
            for j in pair_at[-2:]:
                roles[j] = "S1" if toks[j] == t else "IO"
            pair_at = []
        if t == "to" and nxt in names:
            roles[i] = "END"
            roles[i + 1] = "IO answer"
    return roles


def token_labels(str_tokens: Sequence[str]) -> list[str]:
    """Each token's ground-truth label: its IOI role where it has one, else its word category, else the word."""
    cats = word_categories()
    roles = ioi_roles(str_tokens)
    return [r if r is not None else cats.get(t.strip(), f"'{t.strip()}'") for t, r in zip(str_tokens, roles)]


def label_latents(
    latents: Tensor, labels: Sequence[Sequence[str]], top_k: int = 20, min_share: float = 0.8
) -> list[tuple[int, str, float]]:
    """For every latent that fires, the label most common among its top_k activations and its share.

    latents: (n_seq, pos, d_sae) activations; labels: n_seq lists of pos labels (`token_labels`).
    Returns (latent, label, share) for latents whose top label has share >= min_share.
    """
    flat_labels = [lab for seq in labels for lab in seq]
    acts = latents.flatten(0, 1)  # (tokens, d_sae)
    values, idx = acts.topk(top_k, dim=0)  # (top_k, d_sae)
    out = []
    for latent in range(acts.shape[1]):
        hits = idx[:, latent][values[:, latent] > 0].tolist()
        if len(hits) < top_k:
            continue
        counts: dict[str, int] = {}
        for i in hits:
            counts[flat_labels[i]] = counts.get(flat_labels[i], 0) + 1
        label, n = max(counts.items(), key=lambda kv: kv[1])
        if n / top_k >= min_share:
            out.append((latent, label, n / top_k))
    return out


# --------------------------------------------------------------------------------------
# Dashboards and the latent browser
# --------------------------------------------------------------------------------------


def activation_histogram(latent_acts: Tensor, latent: int):
    """A plotly histogram of one latent's non-zero activations; latent_acts: any shape."""
    from .plot import histogram

    density = latent_acts.gt(0).float().mean().item()
    fig = histogram(latent_acts[latent_acts > 0], title=f"Latent {latent}: activations when firing (density {density:.2%})",
                    xlabel="activation", ylabel="tokens")
    return fig.update_layout(height=280)


def top_contexts_figure(model, tokens: Tensor, latent_acts: Tensor, k: int = 5, window: int = 12):
    """circuitsvis token colouring of the k top-activating contexts of one latent, one after another.

    tokens: (n_seq, pos); latent_acts: (n_seq, pos) the latent's activations.
    """
    from .plot import colored_tokens

    seqs, poss, _ = top_activations(latent_acts, k)
    strs: list[str] = []
    vals: list[Tensor] = []
    for s, p in zip(seqs.tolist(), poss.tolist()):
        lo, hi = max(1, p - window), min(tokens.shape[1], p + 3)
        strs += model.to_str_tokens(tokens[s, lo:hi]) + [" ⏎ "]
        vals += [latent_acts[s, lo:hi], torch.zeros(1)]
    return colored_tokens(strs, torch.cat(vals))


def _html_context(str_tokens: Sequence[str], values: Tensor, vmax: float) -> str:
    spans = []
    for t, v in zip(str_tokens, values.tolist()):
        alpha = min(1.0, max(0.0, v / vmax)) if vmax > 0 else 0.0
        spans.append(f'<span title="{v:.2f}" style="background: rgba(255, 80, 0, {alpha:.2f}); padding: 1px">{html.escape(t)}</span>')
    return " ".join(spans)


def dashboard_html(model, tokens: Tensor, latents: Tensor, latent: int, W_dec: Tensor, k: int = 5, n_logits: int = 8) -> str:
    """A static HTML dashboard of one latent (no JavaScript, so it renders in any widget, offline).

    tokens (n_seq, pos), latents (n_seq, pos, d_sae), W_dec (d_sae, d_model). Shows the
    firing density, the top-k contexts coloured by activation, and promoted / suppressed tokens.
    """
    acts = latents[..., latent]
    density = acts.gt(0).float().mean().item()
    seqs, poss, vals = top_activations(acts, k)
    vmax = vals.max().item()
    rows = []
    for s, p, v in zip(seqs.tolist(), poss.tolist(), vals.tolist()):
        lo = max(1, p - 10)
        rows.append(f"<li>{v:.2f}: {_html_context(model.to_str_tokens(tokens[s, lo:p + 2]), acts[s, lo:p + 2], vmax)}</li>")
    ln = model.norm_module(None)
    effects = logit_effects(W_dec[latent], model.W_U, getattr(ln, "weight", None)).detach()
    up = effects.topk(n_logits)
    down = (-effects).topk(n_logits)

    def words(ids: Tensor) -> str:
        return ", ".join(html.escape(model.to_str_tokens(ids[i:i + 1])[0]) for i in range(len(ids)))

    return (
        f"<h4>Latent {latent} — fires on {density:.2%} of tokens</h4>"
        f"<b>Top contexts</b><ol>{''.join(rows)}</ol>"
        f"<b>Promotes:</b> {words(up.indices)}<br><b>Suppresses:</b> {words(down.indices)}"
    )


def latent_browser(model, tokens: Tensor, latents: Tensor, W_dec: Tensor, latent: int = 0, k: int = 5):
    """An ipywidgets browser: pick a latent index, see its dashboard (`dashboard_html`).

    Returns a VBox(children=[index box, HTML]); changing `browser.children[0].value` redraws.
    """
    import ipywidgets as widgets

    index = widgets.BoundedIntText(value=latent, min=0, max=latents.shape[-1] - 1, description="latent")
    view = widgets.HTML(dashboard_html(model, tokens, latents, latent, W_dec, k))

    def redraw(change: dict) -> None:
        view.value = dashboard_html(model, tokens, latents, change["new"], W_dec, k)

    index.observe(redraw, names="value")
    return widgets.VBox([index, view])


# --------------------------------------------------------------------------------------
# Steering
# --------------------------------------------------------------------------------------


def steering_hook(direction: Tensor, alpha: float) -> Callable[[Tensor, object], Tensor]:
    """A forward hook adding alpha * direction/||direction|| to the activation (batch, pos, d) at every position."""
    unit = direction / direction.norm()

    def hook(x: Tensor, hook: object) -> Tensor:
        return x + alpha * unit.to(x.dtype)

    return hook


def generate_steered(model, prompt: str, hook_name: str, direction: Tensor, alpha: float, max_new_tokens: int = 12) -> str:
    """Greedy continuation of `prompt` with alpha * unit(direction) added at hook_name at every position."""
    with model.hooks(fwd_hooks=[(hook_name, steering_hook(direction, alpha))]):
        return model.generate(prompt, max_new_tokens=max_new_tokens, do_sample=False)


# --------------------------------------------------------------------------------------
# The command that trains the shipped SAE
# --------------------------------------------------------------------------------------

SHIPPED = dict(model="toylang", hook_name="blocks.2.hook_resid_pre", d_sae=512, k=24, steps=1200, batch_size=1024,
               lr=2e-3, n_docs=3000, seed=0, resample_every=200)


def train_shipped(out: Path = SAE_DIR / "toylang", **overrides) -> dict[str, float]:
    """Train the shipped toy-language SAE (SHIPPED settings, overridable), evaluate it, save it with its card."""
    from . import load_model

    s = {**SHIPPED, **overrides}
    torch.manual_seed(s["seed"])
    model = load_model(s["model"], device="cpu")
    t0 = time.time()
    acts = collect_activations(model, toylang_tokens(model, s["n_docs"], seed=1_000_000), s["hook_name"])
    sae = SAE(SAEConfig(d_in=acts.shape[1], d_sae=s["d_sae"], k=s["k"], model_name=s["model"], hook_name=s["hook_name"]), seed=s["seed"])
    train_sae(sae, acts, steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], seed=s["seed"],
              resample_every=s["resample_every"])
    wall = time.time() - t0
    eval_tokens = toylang_tokens(model, 300, seed=3_000_000)
    metrics = evaluate_sae(sae, collect_activations(model, eval_tokens, s["hook_name"]), model, eval_tokens)
    command = "python -m digsite.sae train" + "".join(f" --{k.replace('_', '-')} {v}" for k, v in overrides.items())
    card = {"command": command, "settings": s, "train_seconds": round(wall, 1),
            "eval": "300 fresh toy-language documents (seed 3000000), 64 tokens each, BOS excluded",
            "metrics": {k: round(v, 4) for k, v in metrics.items()}}
    save_sae(sae, out, card)
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m digsite.sae train [--steps N] [--k K] [--d-sae D] ...`: train and save the shipped SAE."""
    parser = argparse.ArgumentParser(prog="python -m digsite.sae", description=main.__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train the shipped toy-language SAE")
    for key, val in SHIPPED.items():
        tr.add_argument(f"--{key.replace('_', '-')}", type=type(val), default=None)
    tr.add_argument("--out", type=Path, default=SAE_DIR / "toylang")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in SHIPPED and v is not None}
    metrics = train_shipped(args.out, **overrides)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
