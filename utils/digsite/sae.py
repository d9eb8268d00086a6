"""Sparse autoencoders on a model's activations: the SAE itself, its training, saving and loading.

An SAE rewrites an activation x (d_in,) as a sparse, non-negative combination of learned
directions: f = act(W_enc^T (x - b_dec) + b_enc) (d_sae,), x_hat = f @ W_dec + b_dec, where
every row of W_dec (a latent's decoder direction, a column of the decoder matrix in
x_hat = W_d f + b_d) has unit norm. Two activations: ReLU with an L1 penalty on f, or TopK
(keep the k largest, Gao et al. 2024), which sets L0 directly. `train_sae` keeps latents alive
by resampling (with Adam's moments reset for the resampled latents) or with Gao et al.'s AuxK
loss (`auxk_loss`, chapter 4's exercise 4.15).

Shapes: W_enc (d_in, d_sae), b_enc (d_sae,), W_dec (d_sae, d_in), b_dec (d_in,),
activations (..., d_in), latents (..., d_sae).

The rest of chapter 4's toolkit lives by idea and is re-exported here, so `from digsite import
sae` is the chapter's one import: metrics and activations in `digsite.sae_eval`, reading
latents in `digsite.latents`, ground-truth labels in `digsite.organisms.labels` (the latent
browser is `digsite.widgets.latent_browser`). The shipped SAE is trained by the organisms' command,

    python -m digsite.organisms train sae-toylang     # recipe: digsite.organisms.sae_recipe

and loaded with `load_sae("toylang")`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .latents import (
    activation_histogram,
    dashboard_html,
    label_latents,
    logit_effects,
    steering_hook,
    top_activations,
    top_contexts_figure,
)
from .organisms import WEIGHTS_DIR
from .organisms.labels import ioi_roles, token_labels, word_categories
from .sae_eval import (
    ce_loss_recovered,
    ce_losses,
    collect_activations,
    dead_and_dense,
    evaluate_sae,
    explained_variance,
    l0_per_token,
    latent_frequencies,
    splice_hook,
    toylang_tokens,
    zero_ablate_hook,
)
from .solutions.ch04 import auxk_loss, topk_activation  # exercises 4.5 and 4.15: the one text of each
from .threads import one_thread

__all__ = [
    # here
    "SAE_DIR",
    "SAEConfig",
    "normalize_rows",
    "topk_activation",
    "auxk_loss",
    "SAE",
    "sae_loss",
    "resample_dead_latents",
    "reset_adam_state",
    "train_sae",
    "save_sae",
    "sae_card",
    "load_sae",
    # digsite.sae_eval
    "toylang_tokens",
    "collect_activations",
    "l0_per_token",
    "explained_variance",
    "latent_frequencies",
    "dead_and_dense",
    "splice_hook",
    "zero_ablate_hook",
    "ce_losses",
    "ce_loss_recovered",
    "evaluate_sae",
    # digsite.latents
    "top_activations",
    "logit_effects",
    "label_latents",
    "activation_histogram",
    "top_contexts_figure",
    "dashboard_html",
    "steering_hook",
    # digsite.organisms.labels
    "word_categories",
    "ioi_roles",
    "token_labels",
]

SAE_DIR = WEIGHTS_DIR / "saes"  # shipped SAEs: NAME.safetensors (weights) and NAME.json (config and card)


# --- the SAE ------------------------------------------------------------------------------


@dataclass
class SAEConfig:
    """What an SAE is: sizes, activation (k=None: ReLU + L1; else TopK; or JumpReLU), and where it reads from."""

    d_in: int
    d_sae: int
    k: int | None = None
    jumprelu: bool = False
    l1_coeff: float = 0.0
    model_name: str = ""
    hook_name: str = ""


def normalize_rows(W: Tensor) -> Tensor:
    """Each row scaled to unit L2 norm. W: (n, d) -> (n, d)."""
    return W / W.norm(dim=-1, keepdim=True).clamp_min(1e-8)


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
        if cfg.jumprelu:
            if cfg.k is not None:
                raise ValueError("An SAE is JumpReLU or TopK, not both: set k=None for JumpReLU.")
            self.threshold = nn.Parameter(torch.zeros(cfg.d_sae))

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
        if self.cfg.jumprelu:  # a latent fires only above its own threshold, and then with its full value
            return torch.relu(pre) * (pre > self.threshold)
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


# --- training -------------------------------------------------------------------------------


def reset_adam_state(optimizer: torch.optim.Optimizer, sae: SAE, latents: Tensor) -> None:
    """Zero Adam's running moments (exp_avg, exp_avg_sq) for the given latents only.

    latents: (d_sae,) bool. A latent owns a row of W_dec, a column of W_enc, an entry of b_enc
    (and of the threshold, for JumpReLU). A resampled latent must not inherit the dead one's
    moments: a stale exp_avg keeps pushing the new direction the old way, and a tiny
    exp_avg_sq (a dead latent gets no gradient) makes the first real gradient a huge step.
    Parameters the optimiser has no state for yet are left alone.
    """
    owned = [(sae.W_dec, (latents,)), (sae.W_enc, (slice(None), latents)), (sae.b_enc, (latents,))]
    if sae.cfg.jumprelu:
        owned.append((sae.threshold, (latents,)))
    for param, index in owned:
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][index] = 0.0


@torch.no_grad()
def resample_dead_latents(
    sae: SAE,
    x: Tensor,
    dead: Tensor,
    gen: torch.Generator,
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Point each dead latent at an input the SAE reconstructs badly (Bricken et al. 2023's resampling, simplified).

    x: (batch, d_in) a batch of activations; dead: (d_sae,) bool. New decoder rows are the
    normalised reconstruction errors of inputs drawn in proportion to their squared error;
    the encoder rows copy them, scaled to the mean alive encoder norm (a fifth of it for a ReLU
    SAE, where any positive pre-activation fires; all of it for TopK, where a resampled latent
    must compete for the top k), and their biases are reset to 0. With the `optimizer` (Adam),
    its moments for those latents are reset too (`reset_adam_state`), as Bricken et al. do.
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
    if optimizer is not None:
        reset_adam_state(optimizer, sae, dead)
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
    aux_k: int | None = None,
    aux_coeff: float = 1 / 32,
    dead_after: int = 50,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Adam on random minibatches of acts (tokens, d_in); returns the loss history.

    b_dec starts at the mean activation. The L1 coefficient ramps up linearly over the
    first `l1_warmup` fraction of steps; the learning rate decays linearly over the last 20%.
    The decoder is kept unit-norm by the forward pass itself (`W_dec_normalized`): the gradient
    through that division has no component along a row, so no separate projection or
    renormalisation step is needed.
    With `resample_every`, latents that did not fire during the last `resample_every`
    steps are resampled (during the first three quarters of training), and Adam's moments for
    them reset. With `aux_k` (Gao et al. 2024's AuxK), latents that have not fired for
    `dead_after` steps also reconstruct the main reconstruction's error with their `aux_k`
    largest pre-activations (`auxk_loss`, weighted by `aux_coeff`), which gives them gradient.
    history: loss, mse, l0 (per step), dead (fraction not fired for `dead_after` steps, per
    step), resampled (per resampling).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, 5 * (1 - s / steps)))
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    history: dict[str, list[float]] = {"loss": [], "mse": [], "l0": [], "dead": [], "resampled": []}
    kind = "TopK" if sae.cfg.k else "L1"
    bar = tqdm(range(steps), disable=not progress, desc=f"SAE {kind} d_sae={sae.cfg.d_sae}")
    with one_thread():
        for step in bar:
            x = acts[torch.randint(0, len(acts), (batch_size,), generator=gen)]
            f, x_hat = sae(x)
            l1 = sae.cfg.l1_coeff * min(1.0, step / max(1, l1_warmup * steps))
            loss, recon, _ = sae_loss(x, f, x_hat, l1)
            dead = since_fired >= dead_after
            if aux_k and dead.any():
                aux = auxk_loss(sae.pre_acts(x), sae.W_dec_normalized, (x - x_hat).detach(), dead, aux_k)
                loss = loss + aux_coeff * aux
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            active = (f > 0).any(0)
            fired |= active
            since_fired = torch.where(active, 0, since_fired + 1)
            if resample_every and (step + 1) % resample_every == 0 and step < 3 * steps // 4:
                history["resampled"].append(resample_dead_latents(sae, x, ~fired, gen, opt))
                fired.zero_()
            history["loss"].append(loss.item())
            history["mse"].append(recon.item())
            history["l0"].append(l0_per_token(f).item())
            history["dead"].append(dead.float().mean().item())
            if step % 100 == 0:
                bar.set_postfix(mse=f"{recon.item():.4f}", l0=f"{history['l0'][-1]:.1f}")
    return history


# --- saving and loading the shipped SAE -----------------------------------------------------


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
    path.with_suffix(".json").write_text(
        json.dumps({"config": asdict(sae.cfg), **card, "sha256": digest}, indent=2) + "\n"
    )


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
