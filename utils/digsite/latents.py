"""Reading an SAE's latents: where a latent fires, what it writes, what it is about, and steering with it.

- `top_activations`, `activation_histogram`, `top_contexts_figure`: where a latent fires;
- `logit_effects`: which tokens its decoder direction promotes through the final norm;
- `label_latents`: the ground-truth label (`digsite.organisms.labels`) most of a latent's top
  activations share;
- `dashboard_html`: all of that for one latent as static HTML (`digsite.widgets.latent_browser`
  browses it);
- `steering_hook`: add a latent's direction to the residual stream.

`top_activations` and `steering_hook` are chapter 4's exercise answers, from `digsite.solutions.ch04`.

Shapes: latents (n_seq, pos, d_sae); one latent's activations (n_seq, pos); W_dec (d_sae, d_model).
"""

from __future__ import annotations

import html
from typing import Sequence

import torch
from torch import Tensor

from .norms import direction_through_norm, norm_weight
from .solutions.ch04 import steering_hook as steering_hook  # the exercises' answers, the one text of each
from .solutions.ch04 import top_activations


def logit_effects(direction: Tensor, W_U: Tensor, ln_weight: Tensor | None = None, normalization: str = "LN") -> Tensor:
    """How a residual direction (d_model,) moves every logit (d_vocab,), through the final norm.

    A LayerNorm ("LN") centres the vector, an RMSNorm ("RMS", pass `model.cfg.normalization_type`)
    does not; both multiply it by their weight (the scale is a positive number common to all
    logits, left out). W_U: (d_model, d_vocab).
    """
    return direction_through_norm(direction, normalization, ln_weight) @ W_U


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


def activation_histogram(latent_acts: Tensor, latent: int):
    """A plotly histogram of one latent's non-zero activations; latent_acts: any shape."""
    from .plot import histogram

    density = latent_acts.gt(0).float().mean().item()
    fig = histogram(
        latent_acts[latent_acts > 0],
        title=f"Latent {latent}: activations when firing (density {density:.2%})",
        xlabel="activation",
        ylabel="tokens",
    )
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
        spans.append(
            f'<span title="{v:.2f}" style="background: rgba(255, 80, 0, {alpha:.2f}); padding: 1px">{html.escape(t)}</span>'
        )
    return " ".join(spans)


def dashboard_html(
    model, tokens: Tensor, latents: Tensor, latent: int, W_dec: Tensor, k: int = 5, n_logits: int = 8
) -> str:
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
        rows.append(
            f"<li>{v:.2f}: {_html_context(model.to_str_tokens(tokens[s, lo : p + 2]), acts[s, lo : p + 2], vmax)}</li>"
        )
    ln = model.norm_module(None)
    effects = logit_effects(
        W_dec[latent],
        model.W_U,
        norm_weight(ln),
        model.cfg.normalization_type,
    ).detach()
    up = effects.topk(n_logits)
    down = (-effects).topk(n_logits)

    def words(ids: Tensor) -> str:
        return ", ".join(html.escape(model.to_str_tokens(ids[i : i + 1])[0]) for i in range(len(ids)))

    return (
        f"<h4>Latent {latent} — fires on {density:.2%} of tokens</h4>"
        f"<b>Top contexts</b><ol>{''.join(rows)}</ol>"
        f"<b>Promotes:</b> {words(up.indices)}<br><b>Suppresses:</b> {words(down.indices)}"
    )
