"""Activation patching, path patching, attribution patching and a small circuit-discovery loop.

The vocabulary (chapter 3): a **clean** prompt ("When Mary and John went to the store, John
gave a drink to" -> Mary) and a **corrupt** one of the same token length (the ABC
corruption: "When Mary and Nina went to the store, Ben gave a drink to"). A **metric**
maps logits (batch, pos, d_vocab) to a scalar; `ioi_metric` builds the logit difference
normalised so that the clean run scores 1 and the corrupt run 0.

**Denoising** (the default here) runs the corrupt prompt and patches in clean activations:
a site that restores the metric is sufficient to carry the information. **Noising** runs the
clean prompt and patches in corrupt (or mean, or zero) activations: a site whose loss hurts
the metric is necessary. Every sweep below takes a `base` run and a `source` of activations,
so both directions use the same code.

- data and metric: `IOIData`, `ioi_data`, `ioi_tokens`, `logit_diff` (per prompt), `ioi_metric`,
  `normalized_logit_diff`;
- the batched engine: `Patch`, `patch_sweep` (many patches per forward pass; reuses the
  base run's residual stream below the first patched layer and its keys and values before
  the first changed position, and skips patches that change nothing) and `patch_loop` (one
  patch per forward pass, the reference it must equal);
- sweeps: `resid_sweep` (layer x position), `head_sweep` (layer x head, for z, q, k, v or
  the pattern), `path_patch` (sender head -> receivers' q, k or v);
- `attribution_patch` (the gradient approximation, one backward for every site);
- circuits over nodes (heads and MLPs): `Node`, `all_nodes`, `ablation_values`,
  `circuit_score`, `prune_circuit` (an ACDC-style greedy pruning loop), `head_roles`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from .hooks import Hook, HookedModel
from .nodes import Node, all_nodes
from .organisms.data import IOIPrompt, ioi_prompts
from .solutions.ch03 import (
    circuit_score,  # exercise 3.9a's answer: the metric with nodes ablated
    logit_diff,  # exercise 3.1's answer, the one text of it
)
from .solutions.ch03 import prune as _prune
from .transformers_compat import KeysValues, forward_with_cache, kv_cache_from_output

__all__ = [
    "IOIData",
    "ioi_data",
    "ioi_tokens",
    "logit_diff",
    "ioi_metric",
    "normalized_logit_diff",
    "Patch",
    "patch_sweep",
    "patch_loop",
    "resid_sweep",
    "head_sweep",
    "path_patch",
    "attribution_patch",
    "Node",
    "all_nodes",
    "ablation_values",
    "circuit_score",
    "prune_circuit",
    "head_roles",
]

Metric = Callable[[Tensor], Tensor]
Head = tuple[int, int]  # (layer, head)

# --- data and metric ------------------------------------------------------------------------


@dataclass
class IOIData:
    """A batch of same-length IOI prompts and two corruptions of each, tokenized.

    clean: (batch, pos) token ids (BOS first).
    corrupt: the **name-swap** corruption: the second mention of the subject (S2) replaced
        by the indirect object ("..., Mary gave a drink to"), so the answer flips to the
        subject and logit(IO) - logit(S) changes sign. Only position S2 differs.
    abc: the ABC corruption from `ioi_prompts` ("When Mary and Nina went to the store, Ben
        gave a drink to"): the subject's two mentions replaced by two other names.
    io, s: (batch,) ids of the indirect object (the answer) and of the subject.
    pos: role -> (batch,) position of that role in each prompt: "IO", "S1", "S2", "END".
    labels: one label per position for plots, with the roles filled in for prompt 0.
    """

    prompts: list[IOIPrompt]
    clean: Tensor
    corrupt: Tensor
    abc: Tensor
    io: Tensor
    s: Tensor
    pos: dict[str, Tensor]
    labels: list[str]


def ioi_data(
    model: HookedModel,
    n: int = 32,
    seed: int = 0,
    template: str = "when",
    split: str = "heldout",
    io_first: bool | None = True,
) -> IOIData:
    """`n` IOI prompts of one template family, all the same token length, and their corruptions.

    Works with any tokenizer: prompts whose names are not single tokens, or whose length
    differs from the first prompt's, are passed over.

    io_first: True keeps only "A and B ..., B gave ... to" prompts with the IO named first
    (so every role sits at the same position in every prompt), False only S-first ones,
    None keeps both orders.
    """
    tok = model.tokenizer
    prompts: list[IOIPrompt] = []
    length, k = None, 0
    while len(prompts) < n:
        for p in ioi_prompts(4 * n, seed=seed + 1000 * k, split=split, same_length=True, template=template):
            ids = model.to_tokens(p.text)[0].tolist()
            io_id, s_id = (tok.encode(" " + name, add_special_tokens=False) for name in (p.io, p.s))
            if len(io_id) != 1 or len(s_id) != 1 or io_id[0] not in ids or s_id[0] not in ids:
                continue  # a name that is not one token (possible with BPE tokenizers)
            first = ids.index(io_id[0]) < ids.index(s_id[0])
            same_length = (length is None or len(ids) == length) and model.to_tokens(p.corrupt_text).shape[1] == len(
                ids
            )
            if same_length and (io_first is None or first == io_first):
                prompts.append(p)
                length = len(ids)
            if len(prompts) == n:
                break
        k += 1
        if k == 20 and len(prompts) < n:
            raise ValueError(f"Found only {len(prompts)} of {n} usable prompts for this tokenizer and template.")
    clean, corrupt, io, s = ioi_tokens(model, prompts)
    abc = model.to_tokens([p.corrupt_text for p in prompts])
    if clean.shape != abc.shape:
        raise ValueError("Clean and ABC prompts tokenize to different lengths.")
    first_io = (clean == io[:, None]).int().argmax(1)
    s_hits = clean == s[:, None]
    s1 = s_hits.int().argmax(1)
    end = torch.full_like(s1, clean.shape[1] - 1)
    pos = {"IO": first_io, "S1": s1, "S2": _second_mention(clean, s), "END": end}
    labels = [f"{t} ({i})" for i, t in enumerate(model.to_str_tokens(clean[0]))]
    for role, where in pos.items():
        i = int(where[0])
        labels[i] = f"{role} ({i})"
    return IOIData(prompts, clean, corrupt, abc, io, s, pos, labels)


def _second_mention(clean: Tensor, s: Tensor) -> Tensor:
    """(batch,) position of the subject's last mention (S2) in each prompt."""
    return clean.shape[1] - 1 - (clean == s[:, None]).flip(1).int().argmax(1)


def ioi_tokens(model: HookedModel, prompts: Sequence[IOIPrompt]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(clean, corrupt, io, s) for IOI prompts of one token length: the name-swap corruption, in tokens.

    clean, corrupt: (batch, pos), corrupt with the subject's second mention (S2) replaced by the
    indirect object, so the answer flips to the subject; io, s: (batch,) ids of the indirect
    object (the answer) and of the subject. The prompts must tokenize to one length, unpadded.
    """
    tok = model.tokenizer
    clean = model.to_tokens([p.text for p in prompts])
    lengths = {len(tok.encode(p.text, add_special_tokens=False)) for p in prompts}
    if len(lengths) != 1:
        raise ValueError(
            "IOI prompts must all have the same token length: use ioi_prompts(..., same_length=True, template=...)."
        )
    io = torch.tensor([tok.encode(p.answer, add_special_tokens=False)[0] for p in prompts], device=clean.device)
    s = torch.tensor([tok.encode(" " + p.s, add_special_tokens=False)[0] for p in prompts], device=clean.device)
    corrupt = clean.clone()
    corrupt[torch.arange(len(prompts)), _second_mention(clean, s)] = io
    return clean, corrupt, io, s


def ioi_metric(model: HookedModel, data: IOIData) -> tuple[Metric, float, float]:
    """The normalised logit difference: (metric, clean_ld, corrupt_ld).

    metric(logits) = (mean LD - corrupt LD) / (clean LD - corrupt LD): 1 on the clean run,
    0 on the corrupt run. logits: (batch, pos, d_vocab) for the prompts of `data`, in order;
    a batch that repeats them (k copies, patch-major) is averaged the same way.
    """
    return normalized_logit_diff(model, data.clean, data.corrupt, data.io, data.s)


def normalized_logit_diff(
    model: HookedModel, clean: Tensor, corrupt: Tensor, io: Tensor, s: Tensor
) -> tuple[Metric, float, float]:
    """`ioi_metric` for any clean / corrupt token batches (batch, pos) and answers io, s (batch,)."""
    with torch.no_grad():
        clean_ld = logit_diff(model(clean), io, s).mean().item()
        corrupt_ld = logit_diff(model(corrupt), io, s).mean().item()

    def metric(logits: Tensor) -> Tensor:
        reps = logits.shape[0] // io.shape[0]
        ld = logit_diff(logits, io.repeat(reps), s.repeat(reps)).mean()
        return (ld - corrupt_ld) / (clean_ld - corrupt_ld)

    return metric, clean_ld, corrupt_ld


# --- the batched patching engine ----------------------------------------------------------


@dataclass(frozen=True)
class Patch:
    """One patch: replace activation[:, *index] at hook `name` by the source's values there.

    index indexes the activation after its batch dimension: `(pos,)` for the residual
    stream (batch, pos, d_model); `(slice(None), head)` for hook_z/q/k/v (batch, pos, head,
    d_head); `(head,)` for hook_pattern (batch, head, q_pos, k_pos).
    """

    name: str
    index: tuple = ()

    @property
    def layer(self) -> int:
        """The block the hook sits in (0 for the embeddings)."""
        return Hook(self.name).layer() or 0


@contextmanager
def _blocks_from(model: HookedModel, start: int) -> Iterator[None]:
    """Run only blocks start.. of the model: the forward pass skips the blocks below `start`."""
    if start == 0:
        yield
        return
    path = model.adapter.blocks
    parent_path, _, attr = path.rpartition(".")
    parent = model.model.get_submodule(parent_path) if parent_path else model.model
    original = getattr(parent, attr)
    setattr(parent, attr, nn.ModuleList(list(original)[start:]))
    try:
        yield
    finally:
        setattr(parent, attr, original)


def _position_axis(name: str) -> int:
    """The position axis of an activation, batch first: 2 (the query) for patterns and scores, else 1."""
    return 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1


def _patch_hook(entries: list[tuple[int, tuple]], source: Tensor, n: int) -> Callable[[Tensor, Hook], Tensor]:
    """A hook that patches `source[:, *idx]` into rows i*n..(i+1)*n of the activation for each (i, idx)."""

    def hook(act: Tensor, hook: Hook) -> Tensor:
        act = act.clone()
        for i, idx in entries:
            act[(slice(i * n, (i + 1) * n), *idx)] = source[(slice(None), *idx)].to(act.dtype)
        return act

    return hook


def _patched(base_act: Tensor, source: Tensor, index: tuple) -> Tensor:
    """The base activation (batch, ...) with one patch applied."""
    out = base_act.clone()
    out[(slice(None), *index)] = source[(slice(None), *index)].to(out.dtype)
    return out


def _first_change(patched: Tensor, base_act: Tensor, name: str) -> int | None:
    """The first position a patch changes at its site, None if it changes nothing."""
    changed = (patched != base_act).movedim(_position_axis(name), 0).flatten(1).any(1).nonzero()
    return int(changed[0]) if len(changed) else None


def _rows_hook(entries: list[tuple[int, Tensor]], n: int) -> Callable[[Tensor, Hook], Tensor]:
    """A hook that sets rows j*n..(j+1)*n to a full patched activation, cut to the positions this pass runs."""

    def hook(act: Tensor, hook: Hook) -> Tensor:
        act = act.clone()
        axis = _position_axis(hook.name)
        for j, full in entries:  # a pass from position p0 sees the last (pos - p0) positions
            act[j * n : (j + 1) * n] = full.narrow(axis, full.shape[axis] - act.shape[axis], act.shape[axis]).to(
                act.dtype
            )
        return act

    return hook


def _run_from(model: HookedModel, tokens: Tensor, p0: int, first_block: int, keys_values: KeysValues | None) -> Tensor:
    """Logits (batch, pos - p0, d_vocab) for positions p0.. of `tokens`, the positions before from the base run."""
    if p0 == 0:
        return model(tokens)
    k = tokens.shape[0] // keys_values.layers[0][0].shape[0]
    positions = torch.arange(p0, tokens.shape[1], device=tokens.device).expand(tokens.shape[0], -1)
    return forward_with_cache(
        model.model, keys_values.prefix(p0, k, first_block), input_ids=tokens[:, p0:], position_ids=positions
    ).logits


def _base_run(
    model: HookedModel, base: Tensor, names: Sequence[str], keys_values: bool
) -> tuple[Tensor, dict[str, Tensor], KeysValues | None]:
    """The base run: logits, the named activations and (if asked) every layer's keys and values.

    Keys and values come from the model's own cache, so the attention implementation (and the
    activations, to the last bit) stay those of a plain run.
    """
    store: dict[str, Tensor] = {}

    def save(act: Tensor, hook: Hook) -> None:
        store[hook.name] = act

    with torch.no_grad(), model.hooks([(name, save) for name in names]):
        out = model.model(input_ids=base, use_cache=keys_values)
    if not keys_values:
        return out.logits, store, None
    return out.logits, store, kv_cache_from_output(out)


def patch_loop(
    model: HookedModel, base: Tensor, source: Mapping[str, Tensor], patches: Sequence[Patch], metric: Metric
) -> Tensor:
    """The reference: one forward pass of `base` per patch. Returns (len(patches),) metric values.

    base: (batch, pos) tokens; source[name]: the activations to patch in, with batch dim
    `batch` (or 1 to broadcast, for mean or zero ablation).
    """
    out = []
    with torch.no_grad():
        for p in patches:
            hook = _patch_hook([(0, p.index)], source[p.name], base.shape[0])
            out.append(metric(model.run_with_hooks(base, fwd_hooks=[(p.name, hook)])))
    return torch.stack(out).float().cpu()


def patch_sweep(
    model: HookedModel,
    base: Tensor,
    source: Mapping[str, Tensor],
    patches: Sequence[Patch],
    metric: Metric,
    max_rows: int = 256,
    reuse_prefix: bool = True,
    skip_noops: bool = True,
    reuse_positions: bool = True,
) -> Tensor:
    """Many patches per forward pass; the same values as `patch_loop`. Returns (len(patches),).

    The base batch (n prompts) is repeated k times, patch-major, and row block i gets patch i
    (k * n <= max_rows rows per pass). Three exact savings, all from the base run's cache:
    - `reuse_prefix`: a pass whose patches all sit in block l or above starts at block l from
      the base run's residual stream (the blocks below would compute exactly that);
    - `skip_noops`: a patch that leaves its site equal to the base run's, for every prompt,
      is not run at all (its value is the base metric);
    - `reuse_positions`: attention is causal, so a patch whose first change is at position p
      leaves positions < p as in the base run: the pass runs positions p.. only, with the base
      run's keys and values for the positions before (a key-value cache).
    """
    n = base.shape[0]
    names = {p.name for p in patches}
    if reuse_prefix:
        names |= {f"blocks.{p.layer}.hook_resid_pre" for p in patches if p.layer > 0}
    base_logits, base_cache, keys_values = _base_run(model, base, sorted(names), reuse_positions)
    base_value = metric(base_logits).float().cpu()
    out = torch.full((len(patches),), float("nan"))
    start_pos: dict[int, int] = {}
    for i, p in enumerate(patches):
        first = 0
        if skip_noops or reuse_positions:
            first = _first_change(_patched(base_cache[p.name], source[p.name], p.index), base_cache[p.name], p.name)
            if first is None and skip_noops:
                out[i] = base_value
                continue
        start_pos[i] = first if (reuse_positions and first is not None) else 0
    # stable: passes of one layer, and within it of nearby start positions, where possible
    todo = sorted(start_pos, key=lambda i: (patches[i].layer, start_pos[i]))
    per_pass = max(1, max_rows // n)
    with torch.no_grad():
        start = 0
        while start < len(todo):
            chunk = todo[start : start + per_pass]
            if reuse_prefix:  # one layer per pass, so that the pass can start at that layer
                chunk = [i for i in chunk if patches[i].layer == patches[chunk[0]].layer]
            start += len(chunk)
            k = len(chunk)
            p0 = min(start_pos[i] for i in chunk)
            first = min(patches[i].layer for i in chunk) if reuse_prefix else 0
            hooks = []
            if first > 0:
                resid = base_cache[f"blocks.{first}.hook_resid_pre"][:, p0:].repeat(k, 1, 1)
                hooks.append((f"blocks.{first}.hook_resid_pre", lambda act, hook, r=resid: r.to(act.dtype)))
            by_name: dict[str, list] = {}
            for j, i in enumerate(chunk):
                by_name.setdefault(patches[i].name, []).append((j, patches[i]))
            for name, entries in by_name.items():
                if p0 > 0:  # patched activations cut to the positions run
                    full = [(j, _patched(base_cache[name], source[name], p.index)) for j, p in entries]
                    hooks.append((name, _rows_hook(full, n)))
                else:
                    hooks.append((name, _patch_hook([(j, p.index) for j, p in entries], source[name], n)))
            with _blocks_from(model, first), model.hooks(hooks):
                logits = _run_from(model, base.repeat(k, 1), p0, first, keys_values)
            for j, i in enumerate(chunk):
                rows = logits[j * n : (j + 1) * n]
                if p0 > 0:
                    rows = torch.cat([base_logits[:, :p0], rows], dim=1)
                out[i] = metric(rows).float().cpu()
    return out


def _cache(model: HookedModel, tokens: Tensor, names: list[str]) -> dict[str, Tensor]:
    _, cache = model.run_with_cache(tokens, names_filter=names)
    return {name: cache[name] for name in names}


def resid_sweep(
    model: HookedModel,
    base: Tensor,
    source_tokens: Tensor,
    metric: Metric,
    site: str = "resid_pre",
    layers: Sequence[int] | None = None,
    **kwargs,
) -> Tensor:
    """Patch the residual stream (`blocks.{l}.hook_{site}`) at one position at a time.

    Denoising: base = corrupt tokens, source_tokens = clean tokens. Returns (n_layers, pos):
    the metric with position p of layer l patched from the source run.
    """
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    names = [f"blocks.{l}.hook_{site}" for l in layers]
    source = _cache(model, source_tokens, names)
    patches = [Patch(name, (p,)) for name in names for p in range(base.shape[1])]
    return patch_sweep(model, base, source, patches, metric, **kwargs).reshape(len(layers), base.shape[1])


def _head_patch(layer: int, head: int, kind: str) -> Patch:
    """Patch one head's `kind` (z, q, k, v or pattern) at every position."""
    name = f"blocks.{layer}.attn.hook_{kind}"
    return Patch(name, (head,) if kind == "pattern" else (slice(None), head))  # pattern: (batch, head, q, k)


def head_sweep(
    model: HookedModel, base: Tensor, source_tokens: Tensor, metric: Metric, kind: str = "z", **kwargs
) -> Tensor:
    """Patch one head's `kind` (z, q, k, v or pattern) at every position. Returns (n_layers, n_heads)."""
    if kind not in ("z", "q", "k", "v", "pattern"):
        raise ValueError(f"kind must be one of z, q, k, v, pattern, not {kind!r}")
    cfg = model.cfg
    names = [f"blocks.{l}.attn.hook_{kind}" for l in range(cfg.n_layers)]
    source = _cache(model, source_tokens, names)
    patches = [_head_patch(l, h, kind) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    return patch_sweep(model, base, source, patches, metric, **kwargs).reshape(cfg.n_layers, cfg.n_heads)


# --- path patching ----------------------------------------------------------------------------


def path_patch(
    model: HookedModel,
    base: Tensor,
    source_tokens: Tensor,
    metric: Metric,
    receivers: Sequence[Head],
    receiver_input: str = "q",
    freeze_mlps: bool = False,
    max_rows: int = 256,
) -> Tensor:
    """Path patching from every sender head to the receivers' `receiver_input` (q, k or v).

    For each sender head (l, h) below the top receiver's layer: (1) run `base` with the
    sender's z taken from the source run and every other head's z below the top receiver
    frozen to the base run (MLPs recompute, as in Wang et al. 2022, unless `freeze_mlps`:
    then only the direct path counts), and record the receivers' inputs; (2) run `base`
    again with only those receiver inputs replaced, everything else free. The metric of (2)
    measures the path sender -> receivers. Returns (n_layers, n_heads), NaN for heads that
    cannot send (at or above the top receiver's layer).
    """
    if receiver_input not in ("q", "k", "v"):
        raise ValueError(f"receiver_input must be q, k or v, not {receiver_input!r}")
    cfg = model.cfg
    top = max(l for l, _ in receivers)
    z_names = [f"blocks.{l}.attn.hook_z" for l in range(top)]
    frozen_names = z_names + ([f"blocks.{l}.hook_mlp_out" for l in range(top)] if freeze_mlps else [])
    recv_names = sorted({f"blocks.{l}.attn.hook_{receiver_input}" for l, _ in receivers})
    source = _cache(model, source_tokens, z_names)
    frozen = _cache(model, base, frozen_names)
    senders = [(l, h) for l in range(top) for h in range(cfg.n_heads)]
    n = base.shape[0]
    out = torch.full((cfg.n_layers, cfg.n_heads), float("nan"))
    per_pass = max(1, max_rows // n)
    with torch.no_grad():
        for start in range(0, len(senders), per_pass):
            chunk = senders[start : start + per_pass]
            k = len(chunk)
            tokens = base.repeat(k, 1)

            def freeze(act: Tensor, hook: Hook, chunk=chunk, k=k) -> Tensor:
                act = frozen[hook.name].repeat(k, *([1] * (act.ndim - 1))).to(act.dtype)
                if hook.name.endswith("hook_z"):
                    for j, (l, h) in enumerate(chunk):
                        if l == hook.layer():
                            act[j * n : (j + 1) * n, :, h] = source[hook.name][:, :, h]
                return act

            recorded: dict[str, Tensor] = {}

            def record(act: Tensor, hook: Hook, recorded: dict[str, Tensor] = recorded) -> None:
                recorded[hook.name] = act.clone()

            model.run_with_hooks(
                tokens, fwd_hooks=[(name, freeze) for name in frozen_names] + [(name, record) for name in recv_names]
            )

            def replace(act: Tensor, hook: Hook, recorded: dict[str, Tensor] = recorded) -> Tensor:
                act = act.clone()
                for l, h in receivers:
                    if l == hook.layer():
                        act[:, :, h] = recorded[hook.name][:, :, h]
                return act

            logits = model.run_with_hooks(tokens, fwd_hooks=[(name, replace) for name in recv_names])
            for j, (l, h) in enumerate(chunk):
                out[l, h] = metric(logits[j * n : (j + 1) * n]).float().cpu()
    return out


# --- attribution patching -----------------------------------------------------------------


def attribution_patch(
    model: HookedModel, base: Tensor, source_tokens: Tensor, metric: Metric, names: Sequence[str]
) -> dict[str, Tensor]:
    """The first-order estimate of patching every site at once: (source - base) . d metric / d act.

    One forward and backward on `base`, one forward on `source_tokens`. Returns name ->
    attribution summed over the batch and the last (feature) dimension: (pos,) for the
    residual stream, (pos, head) for hook_z/q/k/v. Add them up over the dimensions a real
    patch covers (e.g. `.sum(0)` over positions for a whole head) to estimate that patch.
    """
    names = list(names)
    _, acts, grads = model.run_with_cache_and_grads(base, metric, names_filter=names)
    source = _cache(model, source_tokens, names)
    return {name: ((source[name] - acts[name]) * grads[name]).sum(dim=(0, -1)) for name in names}


# --- circuits of nodes ------------------------------------------------------------------------


def ablation_values(model: HookedModel, clean: Tensor, corrupt: Tensor, kind: str = "resample") -> dict[str, Tensor]:
    """What an ablated node's output is replaced by, per hook (hook_z, hook_mlp_out of every block).

    "resample": the corrupt run's activations (batch, ...); "mean": the clean batch's mean at
    each position (1, ...); "zero": zeros (1, ...).
    """
    names = sorted({n.hook for n in all_nodes(model)})
    if kind == "resample":
        return _cache(model, corrupt, names)
    acts = _cache(model, clean, names)
    if kind == "mean":
        return {name: a.mean(0, keepdim=True) for name, a in acts.items()}
    if kind == "zero":
        return {name: torch.zeros_like(a[:1]) for name, a in acts.items()}
    raise ValueError(f"kind must be 'resample', 'mean' or 'zero', not {kind!r}")


def prune_circuit(
    nodes: Sequence[Node], score: Callable[[list[Node]], float], threshold: float
) -> tuple[list[Node], list[tuple[Node, float, bool]]]:
    """ACDC-style greedy pruning over nodes, from the output backwards, with a log.

    Exercise 3.9b's answer (`digsite.solutions.ch03.prune`): start from every node; for each
    node, latest block first, ablate it too; if the score falls by less than `threshold`, it
    stays out. score(kept_nodes) -> float, e.g. a `circuit_score` with resample ablation.
    Returns (the kept nodes in forward order, a log of (node, score without it, removed?),
    latest node first), the log read from the scores the answer asked for.
    """
    nodes = list(nodes)
    scores: list[float] = []

    def recorded(kept: list[Node]) -> float:
        scores.append(score(kept))
        return scores[-1]

    kept = _prune(nodes, recorded, threshold)
    if len(scores) != len(nodes) + 1:
        raise RuntimeError(
            f"prune scored {len(scores)} circuits; expected the full one and one per node ({len(nodes) + 1})."
        )
    return kept, [(node, value, node not in kept) for node, value in zip(reversed(nodes), scores[1:])]


def head_roles(model: HookedModel, data: IOIData) -> dict[str, Tensor]:
    """Attention of every head between the IOI roles, on the clean prompts: name -> (n_layers, n_heads).

    "END->IO", "END->S1", "END->S2" (where the last position looks), "S2->S1" (a
    duplicate-token head looks back at the first mention), "S2->S1+1" (an induction head looks
    at the token after it).
    """
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    cache = _cache(model, data.clean, names)
    b = torch.arange(data.clean.shape[0])
    pos = data.pos
    pairs = {
        "END->IO": ("END", pos["IO"]),
        "END->S1": ("END", pos["S1"]),
        "END->S2": ("END", pos["S2"]),
        "S2->S1": ("S2", pos["S1"]),
        "S2->S1+1": ("S2", pos["S1"] + 1),
    }
    out = {}
    for label, (q_role, k_pos) in pairs.items():
        rows = [cache[name][b, :, pos[q_role], k_pos].mean(0) for name in names]  # (head,) per layer
        out[label] = torch.stack(rows).cpu()
    return out
