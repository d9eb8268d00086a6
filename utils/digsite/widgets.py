"""The course's interactive widgets (ipywidgets), in one place.

- `attention_explorer` (`AttentionExplorer`): every head's attention pattern on a prompt, with a
  layer slider and a prompt box (chapters 0 and 1);
- `lens_explorer` (`LensExplorer`): the logit or tuned lens's top-k tokens at every position, with
  a prompt box and a layer slider (chapter 2);
- `latent_browser`: an SAE latent's dashboard, by latent index (chapter 4).

Each exposes its controls as attributes, so tests (and curious learners) can drive it as a
person would. The figures and numbers they show come from the topic modules (`induction`,
`lens`, `latents`); only the controls live here.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import torch
from torch import Tensor

from .hooks import HookedModel
from .induction import previous_token_score
from .latents import dashboard_html
from .lens import TunedLens, layer_logits, resid_stack, stack_labels

# --- attention patterns ---------------------------------------------------------------------


def _render_layer(model: HookedModel, text: str, layer: int):
    """The circuitsvis figure of one layer's heads for `text`, and a one-line summary."""
    from .plot import attention_heads

    tokens = model.to_tokens(text)
    _, cache = model.run_with_cache(tokens, names_filter=[f"blocks.{layer}.attn.hook_pattern"])
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0]  # (head, q, k)
    prev = previous_token_score(pattern[None])
    names = [f"L{layer}H{h}" for h in range(pattern.shape[0])]
    summary = "previous-token score: " + ", ".join(f"{n} {s:.2f}" for n, s in zip(names, prev.tolist()))
    return attention_heads(pattern, model.to_str_tokens(tokens), names), summary


class AttentionExplorer(widgets.VBox):
    """A layer picker and a prompt box over circuitsvis's view of every head of that layer.

    `layer` (an IntSlider) and `prompt` (a Text box) are the controls; `output` (an Output
    widget) holds the figure and `summary` (a Label) each head's previous-token score. Changing
    either control redraws; `render()` does it by hand.
    """

    def __init__(self, model: HookedModel, text: str, layer: int = 0):
        self.model = model
        self.layer = widgets.IntSlider(value=layer, min=0, max=model.cfg.n_layers - 1, description="layer")
        self.prompt = widgets.Text(
            value=text, description="prompt", continuous_update=False, layout=widgets.Layout(width="90%")
        )
        self.summary = widgets.Label()
        self.output = widgets.Output()
        super().__init__([widgets.HBox([self.layer, self.prompt]), self.summary, self.output])
        self.layer.observe(self._changed, names="value")
        self.prompt.observe(self._changed, names="value")
        self.render()

    def _changed(self, change: dict) -> None:
        self.render()

    def render(self) -> None:
        """Redraw the figure for the current layer and prompt."""
        figure, summary = _render_layer(self.model, self.prompt.value, self.layer.value)
        self.summary.value = summary
        self.output.outputs = ()
        self.output.append_display_data(figure)


def attention_explorer(model: HookedModel, text: str, layer: int = 0) -> AttentionExplorer:
    """An interactive viewer of every head's attention pattern on `text`: pick a layer, edit the prompt."""
    return AttentionExplorer(model, text, layer)


# --- lenses ----------------------------------------------------------------------------------


class LensExplorer:
    """An interactive lens: a prompt box, a layer slider and a lens choice over a table of top-k tokens.

    The widgets are attributes (`prompt`, `layer`, `lens`, `table`), so code can drive it as a
    person would: set `explorer.layer.value = 2` and `explorer.table.value` is the new HTML.
    Display it by leaving it as a cell's last expression.
    """

    def __init__(self, model: HookedModel, prompt: str, k: int = 5, tuned: TunedLens | None = None):
        self.model, self.k, self.tuned = model, k, tuned
        n = model.cfg.n_layers
        self.prompt = widgets.Text(
            value=prompt, description="prompt", continuous_update=False, layout=widgets.Layout(width="90%")
        )
        self.layer = widgets.IntSlider(value=n, min=0, max=n, description="layer", continuous_update=True)
        options = ["logit lens"] + (["tuned lens"] if tuned is not None else [])
        self.lens = widgets.ToggleButtons(options=options, value="logit lens", description="lens")
        self.table = widgets.HTML()
        self._stack: Tensor | None = None
        for w in (self.prompt, self.layer, self.lens):
            w.observe(self._refresh, names="value")
        self.widget = widgets.VBox([self.prompt, self.layer, self.lens, self.table])
        self._refresh({"owner": self.prompt})

    def _refresh(self, change: dict) -> None:
        if change.get("owner") is self.prompt or self._stack is None:
            self._tokens = self.model.to_str_tokens(self.prompt.value)
            self._stack, _ = resid_stack(self.model, self.model.to_tokens(self.prompt.value))
        self.table.value = self.render()

    def predictions(self) -> list[list[tuple[str, float]]]:
        """At the chosen layer and lens: the top-k (token, probability) for every position of the prompt."""
        lens = self.tuned if self.lens.value == "tuned lens" else None
        with torch.no_grad():
            layer = self.layer.value
            probs = layer_logits(self.model, self._stack[layer, 0], layer, lens).softmax(-1)  # (pos, d_vocab)
        values, ids = probs.topk(self.k, dim=-1)
        return [[(self.model.to_string(i[None]), v.item()) for v, i in zip(vs, is_)] for vs, is_ in zip(values, ids)]

    def render(self) -> str:
        """The HTML table: one row per position (the input token, then its top-k next tokens)."""
        label = stack_labels(self.model.cfg.n_layers)[self.layer.value]
        rows = []
        for token, preds in zip(self._tokens, self.predictions()):
            cells = "".join(
                f"<td style='background: rgba(31,119,180,{p:.2f}); padding: 2px 6px'>{html.escape(t)} {p:.2f}</td>"
                for t, p in preds
            )
            rows.append(f"<tr><th style='text-align: right; padding-right: 8px'>{html.escape(token)}</th>{cells}</tr>")
        head = f"<caption>{self.lens.value} at {label}: top-{self.k} next tokens after each input token</caption>"
        return f"<table>{head}{''.join(rows)}</table>"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)


def lens_explorer(model: HookedModel, prompt: str, k: int = 5, tuned: TunedLens | None = None) -> LensExplorer:
    """An interactive lens explorer for `prompt` (see `LensExplorer`); pass `tuned` to offer the tuned lens."""
    return LensExplorer(model, prompt, k=k, tuned=tuned)


# --- SAE latents -----------------------------------------------------------------------------


def latent_browser(model, tokens: Tensor, latents: Tensor, W_dec: Tensor, latent: int = 0, k: int = 5):
    """An ipywidgets browser: pick a latent index, see its dashboard (`dashboard_html`).

    Returns a VBox(children=[index box, HTML]); changing `browser.children[0].value` redraws.
    """
    index = widgets.BoundedIntText(value=latent, min=0, max=latents.shape[-1] - 1, description="latent")
    view = widgets.HTML(dashboard_html(model, tokens, latents, latent, W_dec, k))

    def redraw(change: dict) -> None:
        view.value = dashboard_html(model, tokens, latents, change["new"], W_dec, k)

    index.observe(redraw, names="value")
    return widgets.VBox([index, view])
