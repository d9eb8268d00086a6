"""Lenses: decode every layer's residual stream into a next-token distribution.

- The **logit lens** (nostalgebraist, 2020) sends the residual stream after each layer through
  the model's own final norm and unembedding, as if the remaining layers were skipped. The norm
  sees *that layer's* stream, so it uses that stream's own scale (as nostalgebraist and the
  tuned-lens paper do). For attribution, where one stream is split into parts that must add up,
  use the cached final scale instead: `ActivationCache.apply_ln_to_stack`.
- The **tuned lens** (Belrose et al., 2023) first applies a learned affine translator per layer,
  h -> h + A h + b (A, b initialised to zero, so an untrained tuned lens *is* the logit lens),
  trained to minimise KL(final output || lens output).
- `kl_to_final` measures how far each layer's lens is from the model's output.
- `lens_figure` draws the top token per layer and position; `digsite.widgets.lens_explorer` is
  an ipywidgets explorer (a prompt box and a layer slider) built from the same functions.

Shapes: a "stack" is (layer, ..., d_model) with n_layers + 1 entries: resid_pre of every
block, then the final resid_post (labels "0_pre" ... "final_post", as in the cache).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Sequence

import plotly.graph_objects as go
import torch
from torch import Tensor, nn

from .solutions.ch02 import kl_to_final as _kl_to_final
from .solutions.ch02 import logit_lens  # exercise 2.2's answer, the one text of it

if TYPE_CHECKING:
    from .hooks import HookedModel

__all__ = [
    "resid_names",
    "stack_labels",
    "prompt_batch",
    "resid_stack",
    "unembed",
    "logit_lens",
    "kl_to_final",
    "answer_ranks",
    "first_top1_layer",
    "TunedLens",
    "collect_positions",
    "train_tuned_lens",
    "top_tokens",
    "lens_figure",
    "layer_logits",
]


# --- the residual stream at every layer --------------------------------------------------


def resid_names(n_layers: int) -> list[str]:
    """Hook names of the stack: blocks.{l}.hook_resid_pre for every block, then the last resid_post."""
    return [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]


def stack_labels(n_layers: int) -> list[str]:
    """Labels of the stack's entries: "0_pre", ..., f"{n_layers - 1}_pre", "final_post"."""
    return [f"{l}_pre" for l in range(n_layers)] + ["final_post"]


def prompt_batch(model: HookedModel, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Tokens (batch, pos), right-padded with BOS first, and each prompt's last real position (batch,).

    The last position is where the model predicts the next token; with right padding it is
    not -1 for the shorter prompts. Lengths come from the tokenizer, not from the pad id (GPT-2
    pads with the same id as BOS).
    """
    tokens = model.to_tokens(list(texts))
    lengths = [len(model.tokenizer.encode(t, add_special_tokens=False)) + 1 for t in texts]
    return tokens, torch.tensor(lengths, device=tokens.device) - 1


def resid_stack(model: HookedModel, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """The residual stream before every block and after the last: (n_layers + 1, batch, pos, d_model).

    Also returns the model's logits (batch, pos, d_vocab).
    """
    names = resid_names(model.cfg.n_layers)
    logits, cache = model.run_with_cache(tokens, names_filter=names)
    return torch.stack([cache[n] for n in names]), logits


# --- decoding ------------------------------------------------------------------------------


def unembed(model: HookedModel, x: Tensor) -> Tensor:
    """x (..., d_model) @ W_U + b_U -> logits (..., d_vocab)."""
    return x @ model.W_U + model.b_U


def kl_to_final(lens_logits: Tensor, final_logits: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean KL(final || lens) per layer, in nats: (layer,).

    lens_logits (layer, ..., d_vocab), final_logits (..., d_vocab); mask (...) bool picks the
    positions to average over (default: all). Flattens the positions and calls exercise 2.7's
    answer (`digsite.solutions.ch02.kl_to_final`).
    """
    if mask is None:
        return _kl_to_final(lens_logits.flatten(1, -2), final_logits.flatten(0, -2))
    return _kl_to_final(lens_logits[:, mask], final_logits[mask])


def answer_ranks(lens_logits: Tensor, final_pos: Tensor, answer_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Probability and rank (0 = top-1) of each prompt's answer at its last position, per layer.

    lens_logits (layer, batch, pos, d_vocab), final_pos (batch,), answer_ids (batch,)
    -> probs (layer, batch), ranks (layer, batch).
    """
    batch = torch.arange(lens_logits.shape[1], device=lens_logits.device)
    logits = lens_logits[:, batch, final_pos]  # (layer, batch, d_vocab)
    index = answer_ids[None, :, None].expand(logits.shape[0], -1, 1)
    probs = logits.softmax(-1).gather(-1, index)[..., 0]
    ranks = (logits > logits.gather(-1, index)).sum(-1)
    return probs, ranks


def first_top1_layer(ranks: Tensor) -> Tensor:
    """For each prompt, the first stack entry from which on the answer stays top-1: (batch,).

    ranks (layer, batch) from `answer_ranks`; n_layers + 1 (one past the end) where the answer is
    not top-1 at the output.
    """
    top1 = ranks == 0
    stays = top1.flip(0).cumprod(0).flip(0).bool()  # top-1 here and at every later entry
    return torch.where(stays.any(0), stays.float().argmax(0), torch.full_like(ranks[0], ranks.shape[0]))


# --- the tuned lens ---------------------------------------------------------------------


class TunedLens(nn.Module):
    """One affine translator per block, h -> h + h @ A.T + b, zero-initialised (= the logit lens).

    Translator l acts on resid_pre of block l; the final resid_post is left as it is (the model's
    own output needs no translation).
    """

    def __init__(self, n_layers: int, d_model: int):
        super().__init__()
        self.translators = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_layers))
        for t in self.translators:
            nn.init.zeros_(t.weight)
            nn.init.zeros_(t.bias)

    def translate(self, hidden: Tensor) -> Tensor:
        """Translate resid_pre of every block: (n_layers, ..., d_model) -> the same shape."""
        return torch.stack([h + t(h) for h, t in zip(hidden, self.translators)])

    def translate_layer(self, h: Tensor, layer: int) -> Tensor:
        """Translate one stack entry (..., d_model); entry n_layers (the final resid_post) is returned as it is."""
        return h if layer == len(self.translators) else h + self.translators[layer](h)

    def forward(self, stack: Tensor) -> Tensor:
        """Translated stack: (n_layers + 1, ..., d_model) -> the same shape (the last entry as it is)."""
        return torch.cat([self.translate(stack[:-1]), stack[-1:]])

    def logits(self, model: HookedModel, stack: Tensor) -> Tensor:
        """The tuned lens: translate, then the logit lens. (layer, ..., d_model) -> (layer, ..., d_vocab)."""
        return logit_lens(model, self(stack))


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Turn off gradients for a module's parameters for a while (restored afterwards)."""
    saved = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def collect_positions(model: HookedModel, texts: Sequence[str], batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """The stack and the model's logits at every real (non-padding) position of `texts`.

    Returns stack (n_layers + 1, n_positions, d_model) and final_logits (n_positions, d_vocab).
    """
    stacks, finals = [], []
    for i in range(0, len(texts), batch_size):
        tokens, last = prompt_batch(model, texts[i : i + batch_size])
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] <= last[:, None]
        stack, logits = resid_stack(model, tokens)
        stacks.append(stack[:, mask])
        finals.append(logits[mask])
    return torch.cat(stacks, 1), torch.cat(finals)


def train_tuned_lens(
    model: HookedModel,
    stack: Tensor,
    final_logits: Tensor,
    steps: int = 200,
    batch_size: int = 512,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
) -> tuple[TunedLens, list[float]]:
    """Train a TunedLens on cached positions; return it and the loss per step.

    stack (n_layers + 1, n_positions, d_model) and final_logits (n_positions, d_vocab), e.g. from
    `collect_positions`. Loss: KL(final || tuned lens), summed over layers, averaged over a random
    minibatch of positions (drawn with replacement from one CPU generator seeded once with `seed`).
    Adam; a tqdm progress bar unless progress=False. The model is not changed. Exercise 2.9 has the
    learner write this loop; its check holds the learner's translators and losses to this one's.
    """
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    lens = TunedLens(model.cfg.n_layers, model.cfg.d_model).to(stack.device)
    opt = torch.optim.Adam(lens.parameters(), lr=lr)
    losses = []
    with _frozen(model.model), torch.enable_grad():
        bar = tqdm(range(steps), desc="tuned lens", disable=not progress)
        for _ in bar:
            idx = torch.randint(stack.shape[1], (batch_size,), generator=gen).to(stack.device)
            lens_logits = logit_lens(model, lens.translate(stack[:-1, idx]))  # (n_layers, batch, d_vocab)
            loss = kl_to_final(lens_logits, final_logits[idx]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
    lens.eval()
    return lens, losses


# --- looking at it ------------------------------------------------------------------------


def layer_logits(model: HookedModel, h: Tensor, layer: int, lens: TunedLens | None) -> Tensor:
    """Decode one stack entry h (..., d_model) read at `layer`: (..., d_vocab)."""
    return logit_lens(model, h if lens is None else lens.translate_layer(h, layer))


def top_tokens(
    model: HookedModel, prompt: str, layer: int, k: int = 5, lens: TunedLens | None = None, pos: int = -1
) -> list[tuple[str, float]]:
    """The k most likely next tokens (token, probability) at position `pos` of `prompt`, read at stack entry `layer`.

    layer 0 .. n_layers (n_layers is the model's own output); the logit lens, or `lens` if given.
    """
    stack, _ = resid_stack(model, model.to_tokens(prompt))
    with torch.no_grad():
        probs = layer_logits(model, stack[layer, 0, pos], layer, lens).softmax(-1)
    values, ids = probs.topk(k)
    return [(model.to_string(i[None]), v.item()) for v, i in zip(values, ids)]


def lens_figure(model: HookedModel, prompt: str, lens: TunedLens | None = None, title: str | None = None) -> go.Figure:
    """Heatmap of the top next-token prediction at every stack entry (rows) and position (columns).

    Each cell shows the top token's text, coloured by its probability; hover for the probability.
    Column labels are the input tokens: a cell predicts the token *after* its column.
    """
    stack, _ = resid_stack(model, model.to_tokens(prompt))
    with torch.no_grad():
        probs = (logit_lens(model, stack[:, 0]) if lens is None else lens.logits(model, stack[:, 0])).softmax(-1)
    top_p, top_id = probs.max(-1)
    text = [[model.to_string(i[None]) for i in row] for row in top_id]
    str_tokens = model.to_str_tokens(prompt)
    x = [f"{i}: {t}" for i, t in enumerate(str_tokens)]  # unique column names for repeated tokens
    fig = go.Figure(
        go.Heatmap(
            z=top_p.cpu().numpy(),
            x=x,
            y=stack_labels(model.cfg.n_layers),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="p(top)"),
            hovertemplate="after %{x}<br>%{y}: %{text} (p = %{z:.2f})<extra></extra>",
        )
    )
    name = "logit lens" if lens is None else "tuned lens"
    fig.update_layout(title=title or f"Top prediction by layer ({name})", xaxis_title="position", yaxis_title="layer")
    fig.update_yaxes(autorange="reversed")
    return fig
