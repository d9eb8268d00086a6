"""The hook engine: TransformerLens-named hook points on an unconverted Hugging Face causal LM.

`HookedModel` wraps a Hugging Face model (weights untouched, no LayerNorm folding) and
exposes named hook points: `run_with_cache` records activations, `run_with_hooks` lets a
hook function read or replace them (ablation, patching, steering), and the `hooks()`
context manager removes every PyTorch hook it added when it exits, exceptions included.
Its tokenization (`digsite.tokens`) and weight accessors (`digsite.weights`) are mixins;
norm arithmetic is `digsite.norms`; the hooked attention and every transformers-version
shim are `digsite.transformers_compat`.

Names mean what they mean in TransformerLens. How each reaches the model (see `Site.kind`):
- residual stream, attn_out, mlp_out, MLP pre/post, hook_embed: ordinary PyTorch forward
  hooks / forward-pre-hooks on the module the adapter names;
- hook_pos_embed: the position embedding, (batch, pos, d_model) as in TransformerLens
  (the module itself returns one row for the whole batch);
- hook_z: the input of the attention output projection (works under SDPA/flash);
- hook_q/k/v/attn_scores/pattern: only while one of them is hooked, the model's attention
  implementation is switched to `digsite_attention` (eager attention with hook points,
  masked scores -inf), then restored. q and k are seen *after* rotary embeddings
  (TransformerLens's hook_rot_q / hook_rot_k); with grouped-query attention k and v have
  n_kv_heads heads.
- ln1/ln2/ln_final.hook_scale: the divisor sqrt(mean(centre(x)**2) + eps), (batch, pos, 1);
  hook_normalized: centre(x) / scale, the value BEFORE the norm's weight and bias;
  hook_out (not a TransformerLens name): the norm module's output, after weight and bias —
  what the attention, the MLP or the unembedding reads. Replacing the scale or the
  normalized value re-computes the norm's output from it.
- hook_result: per-head outputs z_h @ W_O[h] (no bias), computed only when named.
- hook_attn_out / hook_mlp_out: what the sublayer adds to the residual stream, so after the
  post-norm in families that normalise sublayer outputs (Gemma 2/3, OLMo-2), whose
  ln1_post / ln2_post.hook_scale and hook_normalized are hook points too. Families without a
  norm in some place (OLMo-2's ln1/ln2, GPT-J's ln2) have no names for it; parallel blocks
  have no resid_mid. docs/models.md lists, per family, what each name records.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, Union

import torch
from torch import Tensor, nn

from .adapters import Adapter, adapter_for, model_config
from .cache import ActivationCache
from .norms import affine, apply_norm, norm_scale, normalize
from .tokens import Tokenization, TokensLike
from .transformers_compat import (
    ATTENTION_KINDS,
    add_attention_callback,
    remove_attention_callback,
    use_attention,
)
from .weights import Weights

NamesFilter = Union[None, str, Sequence[str], Callable[[str], bool]]


@dataclass(frozen=True)
class Hook:
    """What a hook function receives next to the activation: the hook point's name."""

    name: str

    def layer(self) -> int | None:
        """The block index in the name (`blocks.3.…` -> 3), None for embeddings/ln_final."""
        match = re.match(r"blocks\.(\d+)\.", self.name)
        return int(match.group(1)) if match else None


HookFn = Callable[[Tensor, Hook], Union[Tensor, None]]


class HookError(ValueError):
    """A hook name that does not exist, or a hook that returned the wrong thing."""


@dataclass(frozen=True)
class Site:
    """Where one hook name lives: the module, how to reach the tensor, which block."""

    name: str
    module: nn.Module
    kind: str  # "out" | "in" | "resid_mid" | "z" | "scale" | "normalized" | "pos_embed" | "result" | "attn"
    layer: int | None
    flat: bool = False  # the module sees (batch * pos, d) rows (OPT's MLP); the hook sees (batch, pos, d)
    part: int | None = None  # "out" of a fused projection: the hook sees this half ([gate | up], Phi-3)


# --- helpers for PyTorch hook signatures ------------------------------------------------


def _first_input(args: tuple, kwargs: dict) -> Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_first_input(args: tuple, kwargs: dict, x: Tensor) -> tuple[tuple, dict]:
    if args:
        return (x, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": x}


def _first_output(output):
    return output[0] if isinstance(output, tuple) else output


def _with_first_output(output, x: Tensor):
    return (x, *output[1:]) if isinstance(output, tuple) else x


# norm module -> (its input, the scale a hook replaced for it) in the current forward pass, so
# that hook_normalized of another, nested `hooks()` context sees the replaced scale too
_REPLACED_SCALES: dict[nn.Module, tuple[Tensor, Tensor]] = {}


# --- one set of active hooks --------------------------------------------------------------


class _HookSet:
    """The PyTorch hooks behind one `HookedModel.hooks()` context, and how to remove them."""

    def __init__(
        self,
        owner: HookedModel,
        fwd: dict[str, list[HookFn]],
        bwd: dict[str, list[HookFn]],
        grad_path: Sequence[str] = (),
    ):
        self.owner, self.fwd, self.bwd = owner, fwd, bwd
        self.grad_path = set(bwd) | set(grad_path)  # computed values that must stay on the gradient path
        self.handles: list = []
        self.attn_modules: list[nn.Module] = []
        self.mid_delta: dict[int, Tensor] = {}  # resid_mid replacements, re-added to resid_post
        self.batch = 1  # the current forward's batch size, read from the token embedding for hook_pos_embed
        self.attention = ExitStack()
        self.replaced_scales: list[nn.Module] = []
        self.hook_objects = {name: Hook(name) for name in {*fwd, *bwd}}  # made once, not per call

    def run(self, name: str, x: Tensor) -> Tensor:
        """Pass x through the forward hooks for `name`; attach its backward hooks."""
        hook = self.hook_objects[name]
        for fn in self.fwd.get(name, ()):
            out = fn(x, hook)
            if out is not None:
                if not isinstance(out, Tensor) or out.shape != x.shape:
                    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                    raise HookError(f"Hook on {name!r} returned {got}; expected a tensor of shape {tuple(x.shape)}.")
                if out.dtype != x.dtype or out.device != x.device:
                    raise HookError(
                        f"Hook on {name!r} returned a {out.dtype} tensor on {out.device}; the model runs in {x.dtype} "
                        f"on {x.device}. Return `new.to(x.dtype)` (or .to(x)) from the hook."
                    )
                x = out
        for fn in self.bwd.get(name, ()):
            if not torch.is_grad_enabled():
                raise HookError(f"Backward hook on {name!r} needs gradients: run outside torch.no_grad().")
            if x.requires_grad:
                x.register_hook(lambda grad, fn=fn: fn(grad, hook))
        return x

    def run_site(self, site: Site, x: Tensor) -> Tensor:
        """`run` for one site, in the shape the name promises whatever shape the module works in."""
        if site.part is not None:  # one half of a fused projection's output
            parts = list(x.chunk(2, dim=-1))
            new = self.run_site(Site(site.name, site.module, site.kind, site.layer, site.flat), parts[site.part])
            if new is parts[site.part]:
                return x
            parts[site.part] = new
            return torch.cat(parts, dim=-1)
        if site.flat and x.ndim == 2:  # (batch * pos, d) -> (batch, pos, d) and back
            shaped = x.view(self.batch, -1, x.shape[-1])
            new = self.run(site.name, shaped)
            return x if new is shaped else new.reshape(x.shape)
        return self.run(site.name, x)

    def install(self) -> None:
        owner = self.owner
        pre, post = defaultdict(list), defaultdict(list)
        attn_layers: dict[nn.Module, int] = {}
        for name in owner.hook_names:  # forward order, so hooks on one module run in order
            if name not in self.fwd and name not in self.bwd:
                continue
            site = owner._sites[name]
            if site.kind == "attn":
                attn_layers[site.module] = site.layer
            elif site.kind in ("in", "z", "resid_mid"):
                pre[site.module].append(site)
            else:
                post[site.module].append(site)
            if site.kind == "resid_mid":  # before any other hook sees the block's output
                block = owner._blocks[site.layer]
                self.handles.append(block.register_forward_hook(self._mid_fix(site.layer), prepend=True))
            if site.kind == "pos_embed" or site.flat:  # the token embedding runs first and knows the batch size
                embed = owner.model.get_input_embeddings()
                self.handles.append(embed.register_forward_hook(self._record_batch, prepend=True))
        for module, sites in pre.items():
            self.handles.append(module.register_forward_pre_hook(self._pre_hook(sites), with_kwargs=True))
        for module, sites in post.items():
            self.handles.append(module.register_forward_hook(self._post_hook(sites), with_kwargs=True))
        for module, layer in attn_layers.items():
            add_attention_callback(module, self._attn_callback(layer))
            self.attn_modules.append(module)
        if attn_layers:
            self.attention.enter_context(use_attention(owner.model))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for module in self.attn_modules:
            remove_attention_callback(module)
        self.attention.close()
        for norm in self.replaced_scales:
            _REPLACED_SCALES.pop(norm, None)
        self.handles, self.attn_modules, self.mid_delta = [], [], {}

    def _record_batch(self, module, args, output) -> None:
        self.batch = output.shape[0]

    def _pre_hook(self, sites: list[Site]):
        def hook(module, args, kwargs):
            x = original = _first_input(args, kwargs)
            for site in sites:
                if site.kind == "z":  # (batch, pos, head * d_head) <-> (batch, pos, head, d_head)
                    x = self.run(site.name, x.unflatten(-1, (self.owner.cfg.n_heads, -1))).flatten(-2)
                else:
                    new = self.run_site(site, x)
                    if site.kind == "resid_mid" and new is not x:
                        self.mid_delta[site.layer] = new - x
                    x = new
            return None if x is original else _with_first_input(args, kwargs, x)

        return hook

    def _post_hook(self, sites: list[Site]):
        def hook(module, args, kwargs, output):
            y = original = _first_output(output)
            scale = None  # a norm's scale, once its hook_scale ran (replaced or not)
            for site in sites:
                if site.kind == "out":
                    y = self.run_site(site, y)
                elif site.kind == "scale":
                    scale, y = self._scale(site, module, _first_input(args, kwargs), y)
                elif site.kind == "normalized":
                    y = self._normalized(site, module, _first_input(args, kwargs), scale, y)
                elif site.kind == "pos_embed":
                    y = self._pos_embed(site, y)
                elif site.kind == "result":
                    y = self._result(site, module, _first_input(args, kwargs), y)
            return None if y is original else _with_first_output(output, y)

        return hook

    def _mid_fix(self, layer: int):
        """A replaced resid_mid changed only the MLP's input; add the change to the block's output too."""

        def hook(module, args, output):
            if layer in self.mid_delta:
                y = _first_output(output)
                return _with_first_output(output, y + self.mid_delta.pop(layer).reshape(y.shape))

        return hook

    def _scale(self, site: Site, norm: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The (possibly replaced) scale, and the norm's output (re-computed if the scale was replaced)."""
        cfg = self.owner.cfg
        scale = norm_scale(x, cfg.eps, cfg.normalization_type)
        new = self.run_site(site, scale)
        if new is scale:
            return scale, y
        _REPLACED_SCALES[norm] = (x, new)
        self.replaced_scales.append(norm)
        return new, apply_norm(x, new, norm, cfg.normalization_type)

    def _normalized(self, site: Site, norm: nn.Module, x: Tensor, scale: Tensor | None, y: Tensor) -> Tensor:
        """hook_normalized: centre(x) / scale, before weight and bias; a replacement goes through weight and bias."""
        cfg = self.owner.cfg
        if scale is None:
            replaced = _REPLACED_SCALES.get(norm)
            scale = (
                replaced[1]
                if replaced is not None and replaced[0] is x
                else norm_scale(x, cfg.eps, cfg.normalization_type)
            )
        normalized = normalize(x, scale, cfg.normalization_type)
        new = self.run_site(site, normalized)
        if new is normalized and not (site.name in self.grad_path and torch.is_grad_enabled()):
            return y  # untouched: keep the model's own output, to the last bit
        return affine(new, norm)

    def _pos_embed(self, site: Site, y: Tensor) -> Tensor:
        """hook_pos_embed as (batch, pos, d_model); the model adds it to the token embedding either way."""
        expanded = y.expand(self.batch, *y.shape[1:]) if y.shape[0] == 1 else y
        new = self.run(site.name, expanded)
        return y if new is expanded and site.name not in self.grad_path else new

    def _result(self, site: Site, o_proj: nn.Module, z: Tensor, y: Tensor) -> Tensor:
        z = z.unflatten(-1, (self.owner.cfg.n_heads, -1))
        result = torch.einsum("bphd,hdm->bphm", z, self.owner.W_O_layer(site.layer))
        new = self.run(site.name, result)
        if new is result and site.name not in self.bwd:
            return y
        bias = getattr(o_proj, "bias", None)
        return new.sum(-2) + bias if bias is not None else new.sum(-2)

    def _attn_callback(self, layer: int) -> Callable[[str, Tensor], Tensor]:
        names = {kind: f"blocks.{layer}.attn.hook_{kind}" for kind in ATTENTION_KINDS}
        # OPT multiplies q by d_head ** -0.5 before attention: hook_q shows (and takes) q unscaled, as elsewhere
        q_scale = self.owner.cfg.d_head**-0.5 if self.owner.adapter.q_prescaled else None

        def callback(kind: str, x: Tensor) -> Tensor:
            name = names[kind]
            if name not in self.fwd and name not in self.bwd:
                return x
            if kind == "q" and q_scale is not None:
                unscaled = x / q_scale
                new = self.run(name, unscaled)
                return x if new is unscaled else new * q_scale
            return self.run(name, x)

        return callback


# --- the wrapper ------------------------------------------------------------------------


def _get(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


class HookedModel(Tokenization, Weights):
    """A Hugging Face causal LM with TransformerLens-named hook points (build with `wrap`)."""

    def __init__(self, model: nn.Module, tokenizer=None):
        self.model = model
        self.tokenizer = tokenizer
        self.adapter: Adapter = adapter_for(model)
        self.cfg = model_config(self.adapter, model)
        if self.cfg.attn_scores_soft_cap and model.config._attn_implementation in ("sdpa", "flash_attention_2"):
            # transformers 4.x's SDPA and flash attention skip Gemma 2's soft cap (5.x picks eager itself)
            warnings.warn(
                "This model soft-caps its attention scores, which SDPA and flash attention ignore: "
                "it now runs with eager attention, so hooked and plain runs agree and match the model as trained.",
                stacklevel=3,
            )
            model.config._attn_implementation = "eager"
        self._blocks = list(_get(model, self.adapter.blocks))
        self._mlps = [_get(b, self.adapter.mlp) for b in self._blocks]
        self._sites = self._build_sites()
        self.hook_names: list[str] = list(self._sites)

    def _build_sites(self) -> dict[str, Site]:
        a, cfg = self.adapter, self.cfg
        embed = self.model.get_input_embeddings()
        if a.embed_scale and not hasattr(embed, "embed_scale"):
            # transformers 4.x scales Gemma's embedding in the model's forward, after the embedding
            # module: hook_embed is then block 0's input (identical to resid_pre 0 for rotary models)
            sites: list[Site] = [Site("hook_embed", self._blocks[0], "in", None)]
        else:
            sites = [Site("hook_embed", embed, "out", None)]
        if a.pos_embed:
            sites.append(Site("hook_pos_embed", _get(self.model, a.pos_embed), "pos_embed", None))

        def norm_sites(prefix: str, path: str | None, block: nn.Module, layer: int, flat: bool = False) -> list[Site]:
            if path is None:
                return []
            norm = _get(block, path)
            kinds = ("scale", "normalized") if prefix.endswith("_post") else ("scale", "normalized", "out")
            return [Site(f"{prefix}.hook_{kind}", norm, kind, layer, flat) for kind in kinds]

        for l, block in enumerate(self._blocks):
            p = f"blocks.{l}."
            attn, o_proj = _get(block, a.attn), _get(block, a.o_proj)
            ln1_post = _get(block, a.ln1_post) if a.ln1_post else None
            ln2_post = _get(block, a.ln2_post) if a.ln2_post else None
            flat = a.mlp_flat
            sites += [
                Site(p + "hook_resid_pre", block, "in", l),
                *norm_sites(p + "ln1", a.ln1, block, l),
                *(Site(p + f"attn.hook_{kind}", attn, "attn", l) for kind in ATTENTION_KINDS),
                Site(p + "attn.hook_z", o_proj, "z", l),
                Site(p + "attn.hook_result", o_proj, "result", l),
                *norm_sites(p + "ln1_post", a.ln1_post, block, l),
                # what attention adds to the residual stream: after the post-attention norm where there is one
                Site(p + "hook_attn_out", ln1_post or attn, "out", l),
            ]
            if not cfg.parallel_attn_mlp:  # the input of the MLP's norm (or of the MLP where it reads the stream)
                sites.append(Site(p + "hook_resid_mid", _get(block, a.ln2 or a.mlp), "resid_mid", l, flat))
            mlp_in = _get(block, a.mlp_in)
            sites += [
                *norm_sites(p + "ln2", a.ln2, block, l, flat),
                Site(p + "mlp.hook_pre", mlp_in, "out", l, flat, 0 if a.mlp_fused else None),
            ]
            if a.mlp_in_linear:
                sites.append(
                    Site(
                        p + "mlp.hook_pre_linear",
                        _get(block, a.mlp_in_linear),
                        "out",
                        l,
                        flat,
                        1 if a.mlp_fused else None,
                    )
                )
            sites += [
                Site(p + "mlp.hook_post", _get(block, a.mlp_out), "in", l, flat),
                *norm_sites(p + "ln2_post", a.ln2_post, block, l),
                Site(p + "hook_mlp_out", ln2_post or self._mlps[l], "out", l, flat),
                Site(p + "hook_resid_post", block, "out", l),
            ]
        sites += norm_sites("ln_final", a.ln_final, self.model, None)
        return {s.name: s for s in sites}

    # --- hooks ------------------------------------------------------------------------

    def _check_name(self, name: str) -> str:
        if name not in self._sites:
            close = difflib.get_close_matches(name, self.hook_names, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else " See `model.hook_names`."
            raise HookError(f"No hook point called {name!r} in this {self.cfg.architecture} model.{hint}")
        return name

    def names(self, names_filter: NamesFilter = None) -> list[str]:
        """Hook names selected by a filter: None (all but the costly hook_result), a name, a list, a predicate."""
        if names_filter is None:
            return [n for n in self.hook_names if not n.endswith("hook_result")]
        if isinstance(names_filter, str):
            return [self._check_name(names_filter)]
        if callable(names_filter):
            return [n for n in self.hook_names if not n.endswith("hook_result") and names_filter(n)]
        return [self._check_name(n) for n in names_filter]

    def _group(self, hooks: Sequence[tuple[Union[str, Callable[[str], bool]], HookFn]]) -> dict[str, list[HookFn]]:
        grouped: dict[str, list[HookFn]] = defaultdict(list)
        for name_or_filter, fn in hooks:
            for name in self.names(name_or_filter):
                grouped[name].append(fn)
        return grouped

    @contextmanager
    def hooks(
        self,
        fwd_hooks: Sequence[tuple[Union[str, Callable[[str], bool]], HookFn]] = (),
        bwd_hooks: Sequence[tuple[Union[str, Callable[[str], bool]], HookFn]] = (),
    ) -> Iterator[HookedModel]:
        """Add hooks for the duration of a `with` block; all are removed on exit, even after an error.

        Each hook is (name or filter, fn); fn(activation, hook) may return a replacement of the
        same shape. Backward hooks get the gradient of the activation and may return a new one.
        """
        with self._hooks(fwd_hooks, bwd_hooks):
            yield self

    @contextmanager
    def _hooks(self, fwd_hooks, bwd_hooks, grad_path: Sequence[str] = ()) -> Iterator[None]:
        """`hooks`, keeping the names in grad_path on the gradient path (for `run_with_cache_and_grads`)."""
        bwd = self._group(bwd_hooks)
        scale_grads = [n for n in bwd if n.endswith("hook_scale")]
        if scale_grads:
            raise HookError(f"Backward hooks on hook_scale are not supported: {scale_grads[0]!r}.")
        hook_set = _HookSet(self, self._group(fwd_hooks), bwd, grad_path)
        try:
            hook_set.install()
            yield
        finally:
            hook_set.remove()

    def run_with_hooks(
        self,
        tokens: TokensLike,
        fwd_hooks: Sequence[tuple[Union[str, Callable[[str], bool]], HookFn]] = (),
        bwd_hooks: Sequence[tuple[Union[str, Callable[[str], bool]], HookFn]] = (),
        **forward_kwargs,
    ) -> Tensor:
        """Logits (batch, pos, d_vocab) of one forward pass with the given hooks active."""
        with self.hooks(fwd_hooks, bwd_hooks):
            return self(tokens, **forward_kwargs)

    def run_with_cache(
        self,
        tokens: TokensLike,
        names_filter: NamesFilter = None,
        device: str | torch.device | None = None,
        remove_batch_dim: bool = False,
        **forward_kwargs,
    ) -> tuple[Tensor, ActivationCache]:
        """Logits (batch, pos, d_vocab) and an ActivationCache of the selected hook points.

        Runs without gradients (see `run_with_cache_and_grads`). Only the hooks needed for the
        selected names are registered; `device` moves cached tensors (e.g. "cpu" to save GPU memory).
        """
        store: dict[str, Tensor] = {}

        def save(x: Tensor, hook: Hook) -> None:
            x = x[0] if remove_batch_dim else x
            store[hook.name] = x.detach().to(device) if device is not None else x.detach()

        with torch.no_grad():
            logits = self.run_with_hooks(tokens, [(n, save) for n in self.names(names_filter)], **forward_kwargs)
        return logits, ActivationCache(store, self, has_batch_dim=not remove_batch_dim)

    def run_with_cache_and_grads(
        self, tokens: TokensLike, metric: Callable[[Tensor], Tensor], names_filter: NamesFilter = None
    ) -> tuple[Tensor, ActivationCache, ActivationCache]:
        """metric(logits) (a scalar), the activations, and d metric / d activation for each name.

        For attribution patching. Parameters get no .grad; names with no gradient path
        (hook_scale, hook_result when not replaced) are left out of the gradient cache.
        """
        acts: dict[str, Tensor] = {}
        names = self.names(names_filter)

        def keep(x: Tensor, hook: Hook) -> None:
            acts[hook.name] = x

        with torch.enable_grad(), self._hooks([(n, keep) for n in names], (), grad_path=names):
            value = metric(self(tokens))
            wanted = [n for n in names if n in acts and acts[n].requires_grad]
            grads = torch.autograd.grad(value, [acts[n] for n in wanted], allow_unused=True)
        grad_store = {n: g for n, g in zip(wanted, grads) if g is not None}
        act_store = {n: x.detach() for n, x in acts.items()}
        return value.detach(), ActivationCache(act_store, self), ActivationCache(grad_store, self)

    # --- running the model ----------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, tokens: TokensLike, return_type: str = "logits", **forward_kwargs) -> Tensor:
        """Logits (batch, pos, d_vocab), or with return_type="loss" the mean next-token loss.

        Texts of different lengths are right-padded and the loss leaves the padding out. Token
        tensors count every position, unless an `attention_mask` (batch, pos) comes with them:
        then only predictions from a real token of a real token count, and with left padding
        the positions are counted from each row's first real token, as `generate` does.
        """
        if return_type not in ("logits", "loss"):
            raise ValueError(f"return_type must be 'logits' or 'loss', not {return_type!r}")
        if isinstance(tokens, Tensor):
            ids = self.input_ids(tokens)
            mask = forward_kwargs.get("attention_mask")
        else:
            rows = self._token_rows(tokens, prepend_bos=True)
            ids, mask = self._padded(rows), self._padding_mask(rows)
            if forward_kwargs.get("attention_mask") is not None:
                raise ValueError("Pass an attention_mask with token ids, not with texts (texts bring their own).")
        if mask is not None and bool(mask.all()):  # nothing is padding: the plain causal run
            forward_kwargs.pop("attention_mask", None)
            mask = None
        if mask is not None:
            mask = mask.to(ids.device).reshape(ids.shape)
            forward_kwargs["attention_mask"] = mask
            if "position_ids" not in forward_kwargs and bool((mask[:, 0] == 0).any()):  # left padding
                forward_kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp_min(0)
        logits = self.model(input_ids=ids, use_cache=False, **forward_kwargs).logits
        if return_type == "logits":
            return logits
        losses = nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        if mask is None:
            return losses.mean()
        counted = mask[:, :-1].bool() & mask[:, 1:].bool()
        return losses[counted].mean()

    def generate(self, tokens: TokensLike, max_new_tokens: int = 20, **kwargs) -> Union[str, list[str], Tensor]:
        """Hugging Face `generate`: text in, text out (special tokens left out); token ids in, ids out.

        A list of texts of different lengths is left-padded with an attention mask, so each
        prompt continues from its own last word, never from padding. With token ids, pass
        `attention_mask` for padded rows (every position counts otherwise).
        """
        kwargs.setdefault("pad_token_id", self._pad_id())
        if isinstance(tokens, Tensor):
            ids = self.input_ids(tokens)
            mask = kwargs.pop("attention_mask", None)
            mask = torch.ones_like(ids) if mask is None else mask.to(ids.device).reshape(ids.shape)
        else:
            rows = self._token_rows(tokens, prepend_bos=True)
            ids, mask = self._padded(rows, left=True), self._padding_mask(rows, left=True)
        out = self.model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, **kwargs)
        if isinstance(tokens, Tensor):
            return out
        texts = [
            self._need_tokenizer().decode(row[ids.shape[1] - len(r) :], skip_special_tokens=True)
            for row, r in zip(out.tolist(), rows)
        ]
        return texts[0] if isinstance(tokens, str) else texts

    def __repr__(self) -> str:
        c = self.cfg
        return f"HookedModel({c.architecture}: {c.n_layers} layers, {c.n_heads} heads, d_model={c.d_model}, {len(self.hook_names)} hook points)"
