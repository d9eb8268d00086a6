"""How good an SAE is: the metrics practitioners report, and the activations it is measured on.

- activations: `toylang_tokens` (fresh toy-language documents as unpadded token rows) and
  `collect_activations` (one hook point's activation at every token);
- reconstruction and sparsity: `l0_per_token`, `explained_variance`, `latent_frequencies`,
  `dead_and_dense`;
- what splicing the SAE into the model costs: `splice_hook`, `zero_ablate_hook`, `ce_losses`,
  `ce_loss_recovered`; and `evaluate_sae`, all of them at once.

Anything with `sae(x) -> (latents, reconstruction)` and `sae.cfg.hook_name` works as `sae`.
`l0_per_token` (exercise 4.6's `l0`), `explained_variance`, `latent_frequencies` and
`ce_loss_recovered` are chapter 4's exercise answers, from `digsite.solutions.ch04`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .solutions.ch04 import ce_loss_recovered as ce_loss_recovered  # the exercises' answers, the one text of each
from .solutions.ch04 import explained_variance, latent_frequencies
from .solutions.ch04 import l0 as l0_per_token
from .threads import one_thread


def toylang_tokens(model, n_docs: int, seed: int = 1_000_000, seq_len: int = 64) -> Tensor:
    """(n, seq_len) token ids: BOS + the first seq_len - 1 tokens of toy-language documents, no padding.

    The organism was trained on `toylang_texts(32, seed=step)` for steps 0..3999; seeds of a
    million and more give documents it never saw. Documents shorter than seq_len are dropped.
    """
    from .organisms.data import toylang_texts

    tokens = model.to_tokens(toylang_texts(n_docs, seed=seed))
    pad = model.tokenizer.pad_token_id
    full = (
        (tokens[:, :seq_len] != pad).all(dim=1)
        if tokens.shape[1] >= seq_len
        else torch.zeros(len(tokens), dtype=torch.bool)
    )
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


def dead_and_dense(freq: Tensor, dense_threshold: float = 0.1) -> tuple[float, float]:
    """(fraction of latents that never fire, fraction that fire on more than dense_threshold of tokens)."""
    return (freq == 0).float().mean().item(), (freq > dense_threshold).float().mean().item()


def splice_hook(sae: torch.nn.Module, skip_bos: bool = True) -> Callable[[Tensor, object], Tensor]:
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


def ce_losses(model, sae: torch.nn.Module, tokens: Tensor, hook_name: str) -> tuple[float, float, float]:
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


@torch.no_grad()
def evaluate_sae(
    sae: torch.nn.Module, acts: Tensor, model=None, tokens: Tensor | None = None, batch: int = 8192
) -> dict[str, float]:
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
        out |= {
            "ce_clean": clean,
            "ce_sae": spliced,
            "ce_zero_ablation": zero,
            "ce_loss_recovered": (zero - spliced) / (zero - clean),
        }
    return out
