"""Hook points with TransformerLens names on an unconverted Hugging Face causal LM.

`HookedModel` wraps a Hugging Face model (weights untouched, no LayerNorm folding) and
exposes named hook points: `run_with_cache` records activations, `run_with_hooks` lets a
hook function read or replace them (ablation, patching, steering), and the `hooks()`
context manager removes every PyTorch hook it added when it exits, exceptions included.

How a name reaches the model (see `Site.kind`):
- residual stream, attn_out, mlp_out, MLP pre/post, embeddings, norms: ordinary PyTorch
  forward hooks / forward-pre-hooks on the module the adapter names;
- hook_z: the input of the attention output projection (works under SDPA/flash);
- hook_q/k/v/attn_scores/pattern: only while one of them is hooked, the model's attention
  implementation is switched to `digsite_attention` (eager attention with hook points),
  then restored. q and k are seen *after* rotary embeddings (TransformerLens's
  hook_rot_q / hook_rot_k); with grouped-query attention k and v have n_kv_heads heads.
- hook_scale: computed from the norm's input, as TransformerLens defines it: the divisor
  sqrt(mean(x_centred**2) + eps) for LayerNorm, sqrt(mean(x**2) + eps) for RMSNorm,
  shape (batch, pos, 1). Replacing it re-computes the norm's output with the new scale.
- hook_result: per-head outputs z_h @ W_O[h] (no bias), computed only when named.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, Union

import torch
from torch import Tensor, nn

from .adapters import Adapter, adapter_for, in_out_weight, model_config
from .cache import ActivationCache

ATTN_IMPLEMENTATION = "digsite_eager"
ATTENTION_KINDS = ("q", "k", "v", "attn_scores", "pattern")

TokensLike = Union[str, Sequence[str], Tensor]
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
    kind: str  # "out" | "in" | "resid_mid" | "z" | "scale" | "result" | "attn"
    layer: int | None


# --- attention with hook points ---------------------------------------------------------

_ATTN_CALLBACKS: dict[nn.Module, list[Callable[[str, Tensor], Tensor]]] = {}


def digsite_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[Tensor, Tensor]:
    """Eager attention that passes q, k, v, scores and pattern through the active hooks.

    query (batch, head, q_pos, d_head), key/value (batch, kv_head, k_pos, d_head), the mask
    additive (batch, 1, q_pos, k_pos). Returns z (batch, q_pos, head, d_head) and the pattern,
    as every Hugging Face attention function does.
    """
    callbacks = _ATTN_CALLBACKS.get(module, ())

    def hook(kind: str, x: Tensor) -> Tensor:
        for callback in callbacks:
            x = callback(kind, x)
        return x

    # hooks see (batch, pos, head, d_head), the TransformerLens layout
    q = hook("q", query.transpose(1, 2)).transpose(1, 2)
    k = hook("k", key.transpose(1, 2)).transpose(1, 2)
    v = hook("v", value.transpose(1, 2)).transpose(1, 2)
    groups = q.shape[1] // k.shape[1]
    if groups > 1:  # grouped-query attention: each kv head serves `groups` query heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale)  # in place: no second (…, q_pos, k_pos) buffer
    q_len, k_len = scores.shape[-2:]
    if (attention_mask is None or attention_mask.shape[-2] == 1) and q_len > 1 and getattr(module, "is_causal", True):
        # transformers 4.4x leaves causality to SDPA's is_causal or gives a padding-only mask
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril_(k_len - q_len)
        scores.masked_fill_(~causal, torch.finfo(scores.dtype).min)
    if attention_mask is not None:
        mask = attention_mask[..., : k.shape[-2]]
        if mask.dtype == torch.bool:
            scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
        else:
            scores.add_(mask)
    scores = hook("attn_scores", scores)
    pattern = hook("pattern", torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype))
    weights = nn.functional.dropout(pattern, p=dropout, training=module.training)
    z = torch.matmul(weights, v).transpose(1, 2).contiguous()
    return z, pattern


try:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, digsite_attention)
except ImportError:  # transformers < 4.50: the registry is a plain dict
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    ALL_ATTENTION_FUNCTIONS[ATTN_IMPLEMENTATION] = digsite_attention
try:  # transformers >= 4.53 builds the mask per attention implementation: ours wants eager's
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, eager_mask)
except ImportError:  # older versions give any non-SDPA/flash implementation an eager mask
    pass


# --- norms -----------------------------------------------------------------------------


def norm_scale(x: Tensor, eps: float, normalization: str) -> Tensor:
    """The norm's divisor for x (batch, pos, d_model) -> (batch, pos, 1), TransformerLens's hook_scale."""
    y = x.float()
    if normalization == "LN":  # (torch.var is several times slower on CPU)
        mean_square = (y - y.mean(-1, keepdim=True)).pow_(2).mean(-1, keepdim=True)
    else:
        mean_square = torch.linalg.vector_norm(y, dim=-1, keepdim=True).square_().div_(y.shape[-1])
    return mean_square.add_(eps).sqrt_().to(x.dtype)


def apply_norm(x: Tensor, scale: Tensor, norm: nn.Module, normalization: str) -> Tensor:
    """The norm's output for input x (…, d_model) divided by a given scale (…, 1)."""
    y = x.float()
    if normalization == "LN":
        y = y - y.mean(-1, keepdim=True)
    y = (y / scale.float()).to(x.dtype) * norm.weight
    return y + norm.bias if getattr(norm, "bias", None) is not None else y


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


# --- one set of active hooks --------------------------------------------------------------


class _HookSet:
    """The PyTorch hooks behind one `HookedModel.hooks()` context, and how to remove them."""

    def __init__(self, owner: "HookedModel", fwd: dict[str, list[HookFn]], bwd: dict[str, list[HookFn]]):
        self.owner, self.fwd, self.bwd = owner, fwd, bwd
        self.handles: list = []
        self.attn_modules: list[nn.Module] = []
        self.mid_delta: dict[int, Tensor] = {}  # resid_mid replacements, re-added to resid_post
        self.saved_attn_impl: str | None = None
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
                x = out
        for fn in self.bwd.get(name, ()):
            if not torch.is_grad_enabled():
                raise HookError(f"Backward hook on {name!r} needs gradients: run outside torch.no_grad().")
            if x.requires_grad:
                x.register_hook(lambda grad, fn=fn: fn(grad, hook))
        return x

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
        for module, sites in pre.items():
            self.handles.append(module.register_forward_pre_hook(self._pre_hook(sites), with_kwargs=True))
        for module, sites in post.items():
            self.handles.append(module.register_forward_hook(self._post_hook(sites), with_kwargs=True))
        for module, layer in attn_layers.items():
            _ATTN_CALLBACKS.setdefault(module, []).append(self._attn_callback(layer))
            self.attn_modules.append(module)
        if attn_layers:
            config = owner.model.config
            self.saved_attn_impl = config._attn_implementation
            config._attn_implementation = ATTN_IMPLEMENTATION

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for module in self.attn_modules:
            callbacks = _ATTN_CALLBACKS[module]
            callbacks.pop()
            if not callbacks:
                del _ATTN_CALLBACKS[module]
        if self.attn_modules:
            self.owner.model.config._attn_implementation = self.saved_attn_impl
        self.handles, self.attn_modules, self.mid_delta = [], [], {}

    def _pre_hook(self, sites: list[Site]):
        def hook(module, args, kwargs):
            x = original = _first_input(args, kwargs)
            for site in sites:
                if site.kind == "z":  # (batch, pos, head * d_head) <-> (batch, pos, head, d_head)
                    x = self.run(site.name, x.unflatten(-1, (self.owner.cfg.n_heads, -1))).flatten(-2)
                else:
                    new = self.run(site.name, x)
                    if site.kind == "resid_mid" and new is not x:
                        self.mid_delta[site.layer] = new - x
                    x = new
            return None if x is original else _with_first_input(args, kwargs, x)

        return hook

    def _post_hook(self, sites: list[Site]):
        def hook(module, args, kwargs, output):
            y = original = _first_output(output)
            for site in sites:
                if site.kind == "out":
                    y = self.run(site.name, y)
                elif site.kind == "scale":
                    y = self._scale(site, module, _first_input(args, kwargs), y)
                elif site.kind == "result":
                    y = self._result(site, module, _first_input(args, kwargs), y)
            return None if y is original else _with_first_output(output, y)

        return hook

    def _mid_fix(self, layer: int):
        """A replaced resid_mid changed only the MLP's input; add the change to the block's output too."""

        def hook(module, args, output):
            if layer in self.mid_delta:
                return _with_first_output(output, _first_output(output) + self.mid_delta.pop(layer))

        return hook

    def _scale(self, site: Site, norm: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        cfg = self.owner.cfg
        scale = norm_scale(x, cfg.eps, cfg.normalization_type)
        new = self.run(site.name, scale)
        return y if new is scale else apply_norm(x, new, norm, cfg.normalization_type)

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

        def callback(kind: str, x: Tensor) -> Tensor:
            name = names[kind]
            return self.run(name, x) if name in self.fwd or name in self.bwd else x

        return callback


# --- the wrapper ------------------------------------------------------------------------


def _get(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


class HookedModel:
    """A Hugging Face causal LM with TransformerLens-named hook points (build with `wrap`)."""

    def __init__(self, model: nn.Module, tokenizer=None):
        self.model = model
        self.tokenizer = tokenizer
        self.adapter: Adapter = adapter_for(model)
        self.cfg = model_config(self.adapter, model)
        self._blocks = list(_get(model, self.adapter.blocks))
        self._mlps = [_get(b, self.adapter.mlp) for b in self._blocks]
        self._sites = self._build_sites()
        self.hook_names: list[str] = list(self._sites)

    def _build_sites(self) -> dict[str, Site]:
        a, cfg = self.adapter, self.cfg
        sites: list[Site] = [Site("hook_embed", self.model.get_input_embeddings(), "out", None)]
        if a.pos_embed:
            sites.append(Site("hook_pos_embed", _get(self.model, a.pos_embed), "out", None))
        for l, block in enumerate(self._blocks):
            p = f"blocks.{l}."
            ln1, attn, ln2 = _get(block, a.ln1), _get(block, a.attn), _get(block, a.ln2)
            o_proj = _get(block, a.o_proj)
            sites += [
                Site(p + "hook_resid_pre", block, "in", l),
                Site(p + "ln1.hook_scale", ln1, "scale", l),
                Site(p + "ln1.hook_normalized", ln1, "out", l),
                *(Site(p + f"attn.hook_{kind}", attn, "attn", l) for kind in ATTENTION_KINDS),
                Site(p + "attn.hook_z", o_proj, "z", l),
                Site(p + "attn.hook_result", o_proj, "result", l),
                Site(p + "hook_attn_out", attn, "out", l),
            ]
            if not cfg.parallel_attn_mlp:
                sites.append(Site(p + "hook_resid_mid", ln2, "resid_mid", l))
            sites += [
                Site(p + "ln2.hook_scale", ln2, "scale", l),
                Site(p + "ln2.hook_normalized", ln2, "out", l),
                Site(p + "mlp.hook_pre", _get(block, a.mlp_in), "out", l),
            ]
            if a.mlp_in_linear:
                sites.append(Site(p + "mlp.hook_pre_linear", _get(block, a.mlp_in_linear), "out", l))
            sites += [
                Site(p + "mlp.hook_post", _get(block, a.mlp_out), "in", l),
                Site(p + "hook_mlp_out", self._mlps[l], "out", l),
                Site(p + "hook_resid_post", block, "out", l),
            ]
        ln_final = _get(self.model, a.ln_final)
        sites += [Site("ln_final.hook_scale", ln_final, "scale", None), Site("ln_final.hook_normalized", ln_final, "out", None)]
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
    ) -> Iterator["HookedModel"]:
        """Add hooks for the duration of a `with` block; all are removed on exit, even after an error.

        Each hook is (name or filter, fn); fn(activation, hook) may return a replacement of the
        same shape. Backward hooks get the gradient of the activation and may return a new one.
        """
        bwd = self._group(bwd_hooks)
        scale_grads = [n for n in bwd if n.endswith("hook_scale")]
        if scale_grads:
            raise HookError(f"Backward hooks on hook_scale are not supported: {scale_grads[0]!r}.")
        hook_set = _HookSet(self, self._group(fwd_hooks), bwd)
        try:
            hook_set.install()
            yield self
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

        with torch.enable_grad():
            value = metric(self.run_with_hooks(tokens, [(n, keep) for n in names]))
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

        For texts of different lengths the loss leaves out the right padding; token tensors
        are taken as they are, every position counted.
        """
        if return_type not in ("logits", "loss"):
            raise ValueError(f"return_type must be 'logits' or 'loss', not {return_type!r}")
        rows = None if isinstance(tokens, Tensor) else self._token_rows(tokens, prepend_bos=True)
        ids = self.input_ids(tokens) if rows is None else self._padded(rows)
        logits = self.model(input_ids=ids, use_cache=False, **forward_kwargs).logits
        if return_type == "logits":
            return logits
        losses = nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        if rows is None:
            return losses.mean()
        lengths = torch.tensor([len(row) for row in rows], device=ids.device)
        return losses[torch.arange(ids.shape[1] - 1, device=ids.device) < (lengths[:, None] - 1)].mean()

    def generate(self, tokens: TokensLike, max_new_tokens: int = 20, **kwargs) -> Union[str, Tensor]:
        """Hugging Face `generate`; a string prompt gives the decoded string back (special tokens left out)."""
        ids = self.input_ids(tokens)
        kwargs.setdefault("pad_token_id", self._pad_id())
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, **kwargs)
        if isinstance(tokens, str):  # the text, without BOS or padding
            return self._need_tokenizer().decode(out[0].tolist(), skip_special_tokens=True)
        return out

    # --- tokens ----------------------------------------------------------------------------

    def _need_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("This model was wrapped without a tokenizer: pass token ids, or wrap(model, tokenizer).")
        return self.tokenizer

    def _pad_id(self) -> int:
        tok = self._need_tokenizer()
        for token_id in (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id):
            if token_id is not None:
                return token_id
        return 0

    def input_ids(self, tokens: TokensLike) -> Tensor:
        """Token ids (batch, pos) on the model's device, from text, texts, or a 1-D/2-D tensor."""
        if isinstance(tokens, Tensor):
            ids = tokens if tokens.ndim == 2 else tokens.reshape(1, -1)
            return ids.to(self.device, torch.long)
        return self.to_tokens(tokens)

    def _token_rows(self, text: Union[str, Sequence[str]], prepend_bos: bool) -> list[list[int]]:
        """Token ids of each text, unpadded."""
        tok = self._need_tokenizer()
        texts = [text] if isinstance(text, str) else list(text)
        rows = [tok.encode(t, add_special_tokens=False) for t in texts]
        if prepend_bos:
            bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            if bos is None:
                raise ValueError("This tokenizer has no BOS (or EOS) token: use prepend_bos=False.")
            rows = [[bos, *row] for row in rows]
        return rows

    def to_tokens(self, text: Union[str, Sequence[str]], prepend_bos: bool = True) -> Tensor:
        """Token ids (batch, pos) for a text or a list of texts, right-padded; BOS first by default.

        Right padding leaves every real token's logits unchanged (attention is causal).
        """
        return self._padded(self._token_rows(text, prepend_bos))

    def _padded(self, rows: list[list[int]]) -> Tensor:
        """Rows of token ids, right-padded to one width: (batch, pos) on the model's device."""
        width = max(len(row) for row in rows)
        pad = self._pad_id()
        ids = [row + [pad] * (width - len(row)) for row in rows]
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def to_str_tokens(self, tokens: Union[str, Tensor], prepend_bos: bool = True) -> list[str]:
        """Each token of one sequence as its own string (text or a 1-D / (1, pos) tensor)."""
        ids = self.to_tokens(tokens, prepend_bos)[0] if isinstance(tokens, str) else tokens.reshape(-1)
        tok = self._need_tokenizer()
        return [tok.decode([i]) for i in ids.tolist()]

    def to_string(self, tokens: Union[int, Tensor]) -> Union[str, list[str]]:
        """Decode a token id, (pos,) to a string, or (batch, pos) to a list of strings."""
        tok = self._need_tokenizer()
        if isinstance(tokens, int) or tokens.ndim == 0:
            return tok.decode([int(tokens)])
        if tokens.ndim == 1:
            return tok.decode(tokens.tolist())
        return [tok.decode(row) for row in tokens.tolist()]

    # --- weights (raw Hugging Face weights, nothing folded) ------------------------------

    @property
    def W_E(self) -> Tensor:
        """Token embedding (d_vocab, d_model)."""
        return self.model.get_input_embeddings().weight

    @property
    def W_pos(self) -> Tensor:
        """Learned position embedding (n_ctx, d_model); rotary models have none."""
        if not self.adapter.pos_embed:
            raise AttributeError(f"{self.cfg.architecture} uses rotary embeddings: there is no W_pos.")
        return _get(self.model, self.adapter.pos_embed).weight

    @property
    def W_U(self) -> Tensor:
        """Unembedding (d_model, d_vocab)."""
        return self.model.get_output_embeddings().weight.T

    @property
    def b_U(self) -> Tensor:
        """Unembedding bias (d_vocab,), zeros when the model has none."""
        bias = self.model.get_output_embeddings().bias
        return bias if bias is not None else torch.zeros(self.cfg.d_vocab, device=self.device, dtype=self.W_U.dtype)

    def _qkv(self, i: int) -> Tensor:
        cfg = self.cfg
        return torch.stack(
            [self.adapter.qkv(_get(b, self.adapter.attn), cfg.n_heads, cfg.n_kv_heads)[i] for b in self._blocks]
        )

    @property
    def W_Q(self) -> Tensor:
        """Query weights (n_layers, n_heads, d_model, d_head), before rotary."""
        return self._qkv(0)

    @property
    def W_K(self) -> Tensor:
        """Key weights (n_layers, n_kv_heads, d_model, d_head), before rotary."""
        return self._qkv(1)

    @property
    def W_V(self) -> Tensor:
        """Value weights (n_layers, n_kv_heads, d_model, d_head)."""
        return self._qkv(2)

    def W_O_layer(self, layer: int) -> Tensor:
        """One block's output weights per head (n_heads, d_head, d_model)."""
        cfg = self.cfg
        return in_out_weight(_get(self._blocks[layer], self.adapter.o_proj)).reshape(cfg.n_heads, cfg.d_head, cfg.d_model)

    @property
    def W_O(self) -> Tensor:
        """Output weights per head (n_layers, n_heads, d_head, d_model): result_h = z_h @ W_O[l, h]."""
        return torch.stack([self.W_O_layer(l) for l in range(self.cfg.n_layers)])

    @property
    def b_O(self) -> Tensor:
        """Attention output bias (n_layers, d_model), zeros where there is none."""
        biases = [getattr(_get(b, self.adapter.o_proj), "bias", None) for b in self._blocks]
        zeros = torch.zeros(self.cfg.d_model, device=self.device, dtype=self.W_E.dtype)
        return torch.stack([b if b is not None else zeros for b in biases])

    def norm_module(self, layer: int | None = None, which: str = "ln1") -> nn.Module:
        """The final norm (layer None) or a block's ln1 / ln2 module."""
        if layer is None:
            return _get(self.model, self.adapter.ln_final)
        return _get(self._blocks[layer], self.adapter.ln1 if which == "ln1" else self.adapter.ln2)

    def __repr__(self) -> str:
        c = self.cfg
        return f"HookedModel({c.architecture}: {c.n_layers} layers, {c.n_heads} heads, d_model={c.d_model}, {len(self.hook_names)} hook points)"
