"""Checks for chapter 3: activation patching, path patching, attribution patching, circuits.

Every check builds its own small seeded inputs: random tensors, or a tiny random-init
3-layer GPT-2 with the toy-language tokenizer (built once and cached) running real IOI
prompts and their ABC corruptions, so each check takes well under a second and does not
depend on the trained organisms.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..fixtures import tiny
from ..hooks import Hook, HookedModel
from ..nodes import all_nodes
from ..patching import Node, Patch, ablation_values, ioi_data, ioi_metric, patch_loop
from ..solutions.ch03 import (
    ablation_value,
    attribution_scores,
    batched_head_sweep,
    circuit_criteria,
    circuit_score,
    freeze_hook,
    head_direct_effects,
    logit_diff,
    normalise,
    patch_head_hook,
    patch_resid_hook,
    patch_resid_once,
    path_patch_one,
    prune,
)
from .core import exercise_check, verify

# --- shared inputs ---------------------------------------------------------------------------


def tiny_model(n_layer: int = 2) -> HookedModel:
    """The checks' random GPT-2 speaking the toy language (digsite.fixtures.tiny): 2 layers, or 12."""
    return tiny(n_layer, toy=True)


@lru_cache(maxsize=2)
def _tiny_ioi(n_layer: int = 2):
    """(model, data, metric) for a few IOI prompts on a tiny model (4 prompts on 2 layers, 1 on 12)."""
    model = tiny_model(n_layer)
    data = ioi_data(model, 4 if n_layer < 12 else 1, seed=3 + n_layer)
    metric, _, _ = ioi_metric(model, data)
    return model, data, metric


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- 3.1 logit difference --------------------------------------------------------------------


def _logit_diff_first_position(logits, io, s):
    first = logits[:, 0]
    return first.gather(-1, io[:, None]).squeeze(-1) - first.gather(-1, s[:, None]).squeeze(-1)


def _logit_diff_reversed(logits, io, s):
    return -logit_diff(logits, io, s)


def _logit_diff_log_probs(logits, io, s):
    return logit_diff(logits.log_softmax(-1) * 2, io, s)


def _logit_diff_mean(logits, io, s):
    return logit_diff(logits, io, s).mean()


@exercise_check(
    reference=logit_diff,
    wrong_answers={
        (
            "You read the logits at the first position; the prediction of the name is made at the last position."
        ): _logit_diff_first_position,
        (
            "Your sign is flipped: the metric is logit(IO) minus logit(S), positive when the model "
            "prefers the right name."
        ): _logit_diff_reversed,
        "You averaged over the batch; return one value per prompt, (batch,).": _logit_diff_mean,
    },
)
def check_logit_diff(fn) -> None:
    """Your `logit_diff(logits, io, s)` must give logit(IO) - logit(S) at the last position, per prompt."""
    g = _gen(31)
    for batch, pos, vocab in ((5, 7, 20), (1, 4, 9)):
        io = torch.randint(0, vocab, (batch,), generator=g)
        s = (io + 1 + torch.randint(0, vocab - 2, (batch,), generator=g)) % vocab
        verify(
            fn,
            torch.randn(batch, pos, vocab, generator=g) * 2,
            io,
            s,
            what=f"the logit difference per prompt (batch {batch})",
            why="Return one value per prompt as a tensor: later cells average and normalise it.",
        )


# --- 3.2 the normalised metric ----------------------------------------------------------------


@exercise_check(
    reference=normalise,
    wrong_answers={
        (
            "You returned the raw logit difference; map the corrupt value to 0 and the clean value to 1."
        ): lambda ld, clean_ld, corrupt_ld: ld,
        (
            "Dividing by the clean value alone maps the corrupt run to corrupt_ld / clean_ld, not to 0: "
            "subtract the corrupt value first."
        ): lambda ld, clean_ld, corrupt_ld: ld / clean_ld,
        "Your scale is backwards: the clean run should give 1 and the corrupt run 0.": lambda ld, clean_ld, corrupt_ld: (
            (clean_ld - ld) / (clean_ld - corrupt_ld)
        ),
    },
)
def check_normalise(fn) -> None:
    """Your `normalise(ld, clean_ld, corrupt_ld)` must map clean to 1 and corrupt to 0, linearly."""
    verify(fn, torch.tensor([3.0, -1.0, 0.5, 2.25]), 3.0, -1.0, what="normalise(ld, clean_ld=3.0, corrupt_ld=-1.0)")
    verify(fn, torch.tensor([[0.5], [-2.0]]), -2.5, 1.5, what="normalise(ld, clean_ld=-2.5, corrupt_ld=1.5) (batch 2)")


# --- 3.3 a residual-stream patching hook ----------------------------------------------------


def _resid_hook_off_by_one(resid, hook, pos, clean_cache):
    return patch_resid_hook(resid, hook, pos + 1 if pos + 1 < resid.shape[1] else pos - 1, clean_cache)


def _resid_hook_all_positions(resid, hook, pos, clean_cache):
    return clean_cache[hook.name].clone()


def _resid_hook_wrong_axis(resid, hook, pos, clean_cache):
    resid = resid.clone()
    resid[pos] = clean_cache[hook.name][pos]
    return resid


@exercise_check(
    reference=patch_resid_hook,
    wrong_answers={
        "You patched a neighbouring position; patch exactly `pos`.": _resid_hook_off_by_one,
        "You replaced every position with the clean run; patch only `pos`.": _resid_hook_all_positions,
        "`resid[pos]` picks a prompt of the batch: the position is the second axis, resid[:, pos].": _resid_hook_wrong_axis,
    },
)
def check_patch_resid_hook(fn) -> None:
    """Your hook must copy the clean residual stream at `pos` (and only there) into the activation."""
    g = _gen(33)
    for name, shape, pos in (("blocks.1.hook_resid_pre", (4, 6, 8), 2), ("blocks.11.hook_resid_pre", (1, 3, 5), 0)):
        resid, clean = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
        verify(fn, resid, Hook(name), pos, {name: clean}, what=f"the patched residual stream at {name} (pos={pos})")


# --- 3.4 one denoising patch ------------------------------------------------------------------


def _patch_corrupt_into_clean(model, clean_tokens, corrupt_tokens, layer, pos, metric):
    return patch_resid_once(model, corrupt_tokens, clean_tokens, layer, pos, metric)


def _patch_resid_post(model, clean_tokens, corrupt_tokens, layer, pos, metric):
    name = f"blocks.{layer}.hook_resid_post"
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=[name])
    with torch.no_grad():
        logits = model.run_with_hooks(
            corrupt_tokens, fwd_hooks=[(name, lambda r, h: patch_resid_hook(r, h, pos, clean_cache))]
        )
    return float(metric(logits))


def _patch_resid_wrong_pos(model, clean_tokens, corrupt_tokens, layer, pos, metric):
    return patch_resid_once(model, clean_tokens, corrupt_tokens, layer, pos - 1, metric)


@exercise_check(
    reference=patch_resid_once,
    wrong_answers={
        (
            "You patched corrupt activations into the clean run. Denoising runs the CORRUPT prompts and "
            "restores one clean activation."
        ): _patch_corrupt_into_clean,
        "You patched the position before `pos`.": _patch_resid_wrong_pos,
        (
            "You patched resid_post, the output of block `layer`; the exercise patches its input, resid_pre."
        ): _patch_resid_post,
    },
)
def check_patch_resid_once(fn) -> None:
    """Your `patch_resid_once` must run the corrupt prompts with one clean residual vector patched in."""
    model, data, metric = _tiny_ioi()
    verify(
        fn,
        model,
        data.clean,
        data.corrupt,
        1,
        int(data.pos["S2"][0]),
        metric,
        what="the metric after patching layer 1 at S2",
    )
    model, data, metric = _tiny_ioi(12)
    verify(
        fn,
        model,
        data.clean,
        data.corrupt,
        10,
        int(data.pos["S1"][0]),
        metric,
        what="the metric after patching layer 10 at S1 (12 layers, 1 prompt)",
    )


# --- 3.5 a head-patching hook for z, q, k, v and the pattern ---------------------------------


def _head_hook_z_layout_only(act, hook, head, clean_cache):
    act = act.clone()
    act[:, :, head] = clean_cache[hook.name][:, :, head]
    return act


def _head_hook_pattern_layout_only(act, hook, head, clean_cache):
    act = act.clone()
    act[:, head] = clean_cache[hook.name][:, head]
    return act


def _head_hook_last_position(act, hook, head, clean_cache):
    act = act.clone()
    if hook.name.endswith("hook_pattern"):
        act[:, head, -1] = clean_cache[hook.name][:, head, -1]
    else:
        act[:, -1, head] = clean_cache[hook.name][:, -1, head]
    return act


@exercise_check(
    reference=patch_head_hook,
    wrong_answers={
        (
            "hook_pattern is (batch, head, q_pos, k_pos): its heads are on axis 1, unlike z, q, k and v."
        ): _head_hook_z_layout_only,
        (
            "hook_z, q, k and v are (batch, pos, head, d_head): their heads are on axis 2; only the "
            "pattern has them on axis 1."
        ): _head_hook_pattern_layout_only,
        "You patched the head at the last position only; patch it at every position.": _head_hook_last_position,
    },
)
def check_patch_head_hook(fn) -> None:
    """Your hook must patch one head, at every position, for hook_z/q/k/v and for hook_pattern."""
    g = _gen(35)
    cases = (
        ("blocks.1.attn.hook_z", (3, 6, 4, 5), 2),
        ("blocks.2.attn.hook_q", (1, 4, 3, 2), 0),
        ("blocks.0.attn.hook_pattern", (3, 4, 6, 6), 2),
        ("blocks.11.attn.hook_pattern", (1, 3, 4, 4), 1),
    )
    for name, shape, head in cases:
        act, clean = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
        verify(fn, act, Hook(name), head, {name: clean}, what=f"patching head {head} at {name}")


# --- 3.6 path patching: freeze everything but the sender ---------------------------------


def _freeze_nothing(z, hook, sender, clean_cache, corrupt_cache):
    z = z.clone()
    if hook.layer() == sender[0]:
        z[:, :, sender[1]] = clean_cache[hook.name][:, :, sender[1]]
    return z


def _freeze_to_clean(z, hook, sender, clean_cache, corrupt_cache):
    return clean_cache[hook.name].clone()


def _freeze_sender_every_layer(z, hook, sender, clean_cache, corrupt_cache):
    z = corrupt_cache[hook.name].clone()
    z[:, :, sender[1]] = clean_cache[hook.name][:, :, sender[1]]
    return z


@exercise_check(
    reference=freeze_hook,
    wrong_answers={
        (
            "The other heads are not frozen: every head but the sender should take its value from the corrupt run."
        ): _freeze_nothing,
        (
            "You froze everything to the clean run; freeze to the corrupt run and let only the sender "
            "carry the clean signal."
        ): _freeze_to_clean,
        (
            "You patched the sender's head index in every layer; only the sender's own layer (hook.layer()) gets it."
        ): _freeze_sender_every_layer,
    },
)
def check_freeze_hook(fn) -> None:
    """Your hook must return the corrupt z everywhere except the sender head, which comes from the clean run."""
    g = _gen(36)
    for layer, shape, sender in ((1, (2, 5, 4, 3), (1, 3)), (0, (2, 5, 4, 3), (1, 3)), (11, (1, 3, 2, 2), (11, 0))):
        name = f"blocks.{layer}.attn.hook_z"
        z, clean, corrupt = (torch.randn(*shape, generator=g) for _ in range(3))
        verify(
            fn,
            z,
            Hook(name),
            sender,
            {name: clean},
            {name: corrupt},
            what=f"hook_z of layer {layer} with sender {sender}",
        )


# --- 3.7 attribution patching --------------------------------------------------------------


@exercise_check(
    reference=attribution_scores,
    wrong_answers={
        (
            "You multiplied the clean activation by the gradient; attribution uses the CHANGE, clean minus corrupt."
        ): lambda c, k, g: (c * g).sum(dim=(0, 1, 3)),
        (
            "The gradient alone says how sensitive the metric is, not how much patching would change "
            "it: multiply by the activation difference."
        ): lambda c, k, g: g.sum(dim=(0, 1, 3)),
        "Your difference runs corrupt minus clean; patching moves the corrupt run toward clean.": lambda c, k, g: (
            (k - c) * g
        ).sum(dim=(0, 1, 3)),
        "You summed over heads; keep one number per head and sum over batch, position and d_head.": lambda c, k, g: (
            (c - k) * g
        ).sum(dim=(0, 1, 2)),
    },
)
def check_attribution_scores(fn) -> None:
    """Your `attribution_scores` must take (clean - corrupt) . gradient, one number per head."""
    g = _gen(37)
    for shape in ((3, 5, 4, 6), (1, 2, 7, 3)):
        clean, corrupt, grad = (torch.randn(*shape, generator=g) for _ in range(3))
        verify(fn, clean, corrupt, grad, what=f"the attribution of each head (z of shape {shape})")


# --- 3.8 ablation values ---------------------------------------------------------------------


def _ablation_mean_over_positions(clean_acts, corrupt_acts, kind):
    if kind == "mean":
        return clean_acts.mean(dim=(0, 1), keepdim=True).expand_as(clean_acts[:1]).clone()
    return ablation_value(clean_acts, corrupt_acts, kind)


def _ablation_resample_from_clean(clean_acts, corrupt_acts, kind):
    if kind == "resample":
        return clean_acts.clone()
    return ablation_value(clean_acts, corrupt_acts, kind)


@exercise_check(
    reference=ablation_value,
    wrong_answers={
        (
            "Your mean also averages over positions; mean ablation keeps a separate mean at each position."
        ): _ablation_mean_over_positions,
        (
            "Resample ablation takes activations from the corrupt (other) prompts, not the clean run's own."
        ): _ablation_resample_from_clean,
    },
)
def check_ablation_value(fn) -> None:
    """Your `ablation_value` must give zeros, the per-position mean, or the corrupt activations."""
    g = _gen(38)
    for shape in ((4, 5, 3, 2), (2, 3, 6)):
        clean, corrupt = torch.randn(*shape, generator=g) + 1, torch.randn(*shape, generator=g)
        for kind in ("zero", "mean", "resample"):
            verify(fn, clean, corrupt, kind, what=f"the {kind!r} ablation value for activations of shape {shape}")


# --- 3.9a the score of a circuit ------------------------------------------------------------


def _score_ablating_kept(model, clean, values, keep, metric, nodes=None):
    nodes = all_nodes(model) if nodes is None else list(nodes)
    return circuit_score(model, clean, values, [n for n in nodes if n not in set(keep)], metric, nodes)


def _score_whole_layers(model, clean, values, keep, metric, nodes=None):
    nodes = all_nodes(model) if nodes is None else list(nodes)
    hit = {n.layer for n in nodes if n.head is not None and n not in set(keep)}  # one head out: the layer's z out
    return circuit_score(model, clean, values, [n for n in keep if n.head is None or n.layer not in hit], metric, nodes)


def _score_heads_only(model, clean, values, keep, metric, nodes=None):
    nodes = all_nodes(model) if nodes is None else list(nodes)
    return circuit_score(model, clean, values, list(keep) + [n for n in nodes if n.head is None], metric, nodes)


def _score_all_nodes(model, clean, values, keep, metric, nodes=None):
    return circuit_score(model, clean, values, keep, metric)


@exercise_check(
    reference=circuit_score,
    wrong_answers={
        "You ablated the kept nodes and kept the others: `keep` is what runs as usual.": _score_ablating_kept,
        (
            "A dropped head took its whole layer's hook_z with it: replace only that head's slice "
            "(the head axis of hook_z), so the layer's other heads still run."
        ): _score_whole_layers,
        "Your MLP nodes are never ablated: an MLP node stands for the whole hook_mlp_out of its block.": _score_heads_only,
        (
            "You ablated nodes outside `nodes`: only the nodes of `nodes` that are not kept are ablated; "
            "everything else runs as usual."
        ): _score_all_nodes,
    },
)
def check_circuit_score(fn) -> None:
    """Your `circuit_score` must ablate exactly the nodes of `nodes` not in `keep`, heads by their slice of z."""
    model, data, metric = _tiny_ioi()
    values = ablation_values(model, data.clean, data.corrupt, "resample")
    verify(
        fn,
        model,
        data.clean,
        values,
        [Node(0, 1), Node(1, 2), Node(1)],
        metric,
        what="the metric with all but 0.1, 1.2 and MLP1 resample-ablated (2 layers, 4 prompts)",
        why="Return the metric as a float: the search compares scores.",
    )
    model, data, metric = _tiny_ioi(12)
    values = ablation_values(model, data.clean, data.corrupt, "zero")  # mean of 1 prompt = no ablation
    nodes = [Node(9, 0), Node(9, 3), Node(9), Node(10, 1), Node(11, 2), Node(11)]
    verify(
        fn,
        model,
        data.clean,
        values,
        [Node(9, 3), Node(11)],
        metric,
        nodes,
        what="the metric with 9.0, MLP9, 10.1 and 11.2 zero-ablated (12 layers, nodes given)",
        why="Return the metric as a float: the search compares scores.",
    )


# --- 3.9b an ACDC-style pruning loop ----------------------------------------------------------


def _prune_forwards(nodes, score, threshold):
    return prune(nodes[::-1], score, threshold)[::-1]  # visits the input first


def _prune_inverted(nodes, score, threshold):
    kept = list(nodes)
    current = score(kept)
    for node in reversed(list(nodes)):
        trial = [n for n in kept if n != node]
        value = score(trial)
        if value < current - threshold:
            kept, current = trial, value
    return kept


def _prune_against_full(nodes, score, threshold):
    kept = list(nodes)
    full = score(kept)
    for node in reversed(list(nodes)):
        trial = [n for n in kept if n != node]
        if score(trial) >= full - threshold:
            kept = trial
    return kept


def _prune_two_sided(nodes, score, threshold):
    kept = list(nodes)
    current = score(kept)
    for node in reversed(list(nodes)):
        trial = [n for n in kept if n != node]
        value = score(trial)
        if abs(current - value) < threshold:
            kept, current = trial, value
    return kept


def _score_redundant(keep: list[Node]) -> float:
    s = set(keep)
    a, b, c, d, e = Node(0, 0), Node(0, 1), Node(1, 0), Node(1), Node(2, 1)
    value = 0.5 * (a in s or e in s) + 0.3 * (c in s)  # a and e are redundant: only one is needed
    return value + 0.06 * (b in s) + 0.06 * (d in s)  # b and d: small alone, big together


def _score_negative(keep: list[Node]) -> float:
    s = set(keep)
    return -1.0 + 0.4 * (Node(0, 1) in s) - 0.2 * (Node(3, 0) in s) + 0.35 * (Node(11, 1) in s and Node(10) in s)


@exercise_check(
    reference=prune,
    wrong_answers={
        (
            "You visited the nodes from the input forwards; prune from the output backwards (latest node first)."
        ): _prune_forwards,
        "Your test is inverted: a node is removed when removing it costs LESS than the threshold.": _prune_inverted,
        (
            "You compared each trial with the full model's score; compare with the CURRENT circuit, "
            "which shrinks as nodes go."
        ): _prune_against_full,
        (
            "Your test is two-sided: a removal that RAISES the score by more than the threshold must be "
            "accepted too (keep the trial when its score >= current - threshold, not when |change| is small)."
        ): _prune_two_sided,
    },
)
def check_prune(fn) -> None:
    """Your `prune(nodes, score, threshold)` must return the kept nodes, in forward order."""
    why = "Return a list of nodes: later cells count and draw them."
    verify(
        fn,
        [Node(0, 0), Node(0, 1), Node(1, 0), Node(1), Node(2, 1)],
        _score_redundant,
        0.1,
        what="the kept nodes (threshold 0.1)",
        why=why,
    )
    verify(
        fn,
        [Node(0, 1), Node(3, 0), Node(10), Node(11, 1)],
        _score_negative,
        0.3,
        what="the kept nodes (negative scores, threshold 0.3, 12 layers)",
        why=why,
    )
    verify(
        fn,
        [Node(0, 1), Node(3, 0), Node(10), Node(11, 1)],
        _score_negative,
        0.1,
        what="the kept nodes (a removal that raises the score, threshold 0.1)",
        why=why,
    )


# --- 3.10 a batched head sweep -----------------------------------------------------------------


def _sweep_one_metric(model, base, source_tokens, metric):
    values = batched_head_sweep(model, base, source_tokens, metric)
    return values.mean().expand_as(values).clone()  # the metric of every copy at once, mean-based


def _sweep_head_major(model, base, source_tokens, metric):
    values = batched_head_sweep(model, base, source_tokens, metric)
    return values.T.reshape(values.shape).clone()  # copies numbered head-major, read layer-major


def _sweep_whole_layer(model, base, source_tokens, metric):
    cfg = model.cfg
    names = [f"blocks.{l}.attn.hook_z" for l in range(cfg.n_layers)]
    _, source = model.run_with_cache(source_tokens, names_filter=names)
    per_layer = patch_loop(model, base, {n: source[n] for n in names}, [Patch(n) for n in names], metric)
    return per_layer[:, None].expand(cfg.n_layers, cfg.n_heads).clone()


@exercise_check(
    reference=batched_head_sweep,
    wrong_answers={
        (
            "Every head got the same value: apply the metric to each copy's rows separately, "
            "not to the whole stacked batch."
        ): _sweep_one_metric,
        (
            "Your copies are numbered in one order and read back in another: copy i must be "
            "head (i // n_heads, i % n_heads), layer-major, as the (n_layers, n_heads) result is read."
        ): _sweep_head_major,
        (
            "Each copy had its whole layer patched: write only head h's slice of hook_z into copy (layer, h)'s rows."
        ): _sweep_whole_layer,
        (
            "Your patches go the wrong way: the base run is the one that runs, and the source run "
            "supplies the patched heads."
        ): lambda model, base, source_tokens, metric: batched_head_sweep(model, source_tokens, base, metric),
    },
)
def check_batched_head_sweep(fn) -> None:
    """Your `batched_head_sweep` must equal `P.head_sweep` (kind z): one value per (layer, head)."""
    why = "Return a (n_layers, n_heads) tensor on the CPU, like P.head_sweep: later cells plot and compare it."
    model, data, metric = _tiny_ioi()
    verify(fn, model, data.corrupt, data.clean, metric, what="the denoising sweep (2 layers, 4 prompts)", why=why)
    model, data, metric = _tiny_ioi(12)
    verify(fn, model, data.clean, data.corrupt, metric, what="the noising sweep (12 layers, 1 prompt)", why=why)


# --- 3.11 path patching from scratch -------------------------------------------------------------


def _path_variant(model, base, source_tokens, metric, sender, receivers, receiver_input, mistake):
    """Path patching with one mistake: 'unfrozen', 'mlps', 'layer', 'source' (receivers read the source run)."""
    top = max(l for l, _ in receivers)
    heads = [f"blocks.{l}.attn.hook_z" for l in range(top)]
    mlps = [f"blocks.{l}.hook_mlp_out" for l in range(top)] if mistake == "mlps" else []
    inputs = sorted({f"blocks.{l}.attn.hook_{receiver_input}" for l, _ in receivers})
    _, src = model.run_with_cache(source_tokens, names_filter=heads + inputs)
    _, held = model.run_with_cache(base, names_filter=heads + mlps)

    def step_one(act, hook):
        if hook.name in mlps:
            return held[hook.name]
        out = (act if mistake == "unfrozen" else held[hook.name]).clone()
        if hook.layer() == sender[0]:
            out[:, :, sender[1]] = src[hook.name][:, :, sender[1]]
        return out

    store = {}
    with torch.no_grad():
        model.run_with_hooks(
            base,
            fwd_hooks=[(n, step_one) for n in heads + mlps]
            + [(n, lambda a, hook: store.update({hook.name: a})) for n in inputs],
        )
    if mistake == "source":
        store = {n: src[n] for n in inputs}

    def step_two(act, hook):
        act = act.clone()
        if mistake == "layer":
            return store[hook.name].clone()
        for l, h in receivers:
            if l == hook.layer():
                act[:, :, h] = store[hook.name][:, :, h]
        return act

    with torch.no_grad():
        return float(metric(model.run_with_hooks(base, fwd_hooks=[(n, step_two) for n in inputs])))


def _path_wrong(mistake):
    def wrong(model, base, source_tokens, metric, sender, receivers, receiver_input="q"):
        return _path_variant(model, base, source_tokens, metric, sender, receivers, receiver_input, mistake)

    return wrong


@exercise_check(
    reference=path_patch_one,
    wrong_answers={
        (
            "The other heads were not held at their base-run output, so the sender's change also "
            "reached the receivers through later heads: freeze every head but the sender."
        ): _path_wrong("unfrozen"),
        (
            "You froze the MLPs as well: in this path patching they recompute, so a path from the "
            "sender through an MLP into the receivers counts."
        ): _path_wrong("mlps"),
        (
            "You replaced the input of every head in the receivers' layers: only the receiver heads "
            "take the recorded values."
        ): _path_wrong("layer"),
        (
            "The receivers' inputs came straight from the source run, so every sender gives the same "
            "value: record them in a base run where only the sender is patched."
        ): _path_wrong("source"),
    },
)
def check_path_patch_one(fn) -> None:
    """Your `path_patch_one` must equal `P.path_patch` for every sender/receiver pair of a small case."""
    model, data, metric = _tiny_ioi()
    for sender in [(0, h) for h in range(4)]:
        for receiver in [(1, 0), (1, 3)]:
            verify(
                fn,
                model,
                data.corrupt,
                data.clean,
                metric,
                sender,
                [receiver],
                "q",
                what=f"the path {sender} -> {receiver}'s queries (2 layers, 4 prompts)",
            )
    model, data, metric = _tiny_ioi(12)
    for sender, kind in [((9, 1), "k"), ((4, 2), "v"), ((10, 0), "q")]:
        verify(
            fn,
            model,
            data.clean,
            data.corrupt,
            metric,
            sender,
            [(11, 0), (10, 3)],
            kind,
            what=f"noising the path {sender} -> the {kind} of 11.0 and 10.3 (12 layers)",
        )


# --- 3.12 faithfulness, completeness, minimality --------------------------------------------------


def _score_backups(keep: list[Node]) -> float:
    s = set(keep)
    a, b, c, d, e = Node(0, 0), Node(1, 0), Node(1, 1), Node(2), Node(2, 3)
    value = 1.0 * (a in s) + 0.5 * (b in s or c in s) + 0.2 * (d in s)  # b and c back each other up
    return value + 0.1 * (e in s) + 0.3 * (e in s and c not in s)  # e, outside the circuit, matters more without c


def _score_criteria_negative(keep: list[Node]) -> float:
    s = set(keep)
    return -2.0 + 0.8 * (Node(10, 2) in s) * (Node(11) in s) - 0.3 * (Node(3, 1) in s) + 0.25 * (Node(7) in s)


def _score_synergy(keep: list[Node]) -> float:
    s = set(keep)
    x, y = Node(1, 2) in s, Node(4) in s
    return 0.5 * x + 0.5 * (x and y) + 0.1 * (Node(0, 3) in s)


def _criteria_difference(score, circuit, nodes, subsets):
    out = circuit_criteria(score, circuit, nodes, subsets)
    out["faithfulness"] = torch.tensor(score(list(nodes)) - score(list(circuit)))
    return out


def _criteria_against_full_model(score, circuit, nodes, subsets):
    out = circuit_criteria(score, circuit, nodes, subsets)
    full = score(list(nodes))
    out["incompleteness"] = torch.tensor([abs(score([n for n in circuit if n not in K]) - full) for K in subsets])
    return out


def _criteria_empty_k_only(score, circuit, nodes, subsets):
    return {
        **circuit_criteria(score, circuit, nodes, subsets),
        "minimality": circuit_criteria(score, circuit, nodes, [])["minimality"],
    }


def _criteria_without_empty_k(score, circuit, nodes, subsets):
    out = circuit_criteria(score, circuit, nodes, subsets)
    changes = []
    for v in circuit:
        options = [K for K in subsets if v not in K] or [[]]
        changes.append(
            max(
                abs(score([n for n in circuit if n not in [*K, v]]) - score([n for n in circuit if n not in K]))
                for K in options
            )
        )
    out["minimality"] = torch.tensor(changes)
    return out


def _criteria_minimality_on_model(score, circuit, nodes, subsets):
    out = circuit_criteria(score, circuit, nodes, subsets)
    # knock v out of the full model instead of the circuit
    out["minimality"] = circuit_criteria(score, list(nodes), nodes, subsets)["minimality"][
        [list(nodes).index(v) for v in circuit]
    ]
    return out


@exercise_check(
    reference=circuit_criteria,
    wrong_answers={
        (
            "Your faithfulness is a difference; report the circuit's score as a fraction of the full "
            "model's (1 = the circuit does all the model does)."
        ): _criteria_difference,
        (
            "Your incompleteness compares the circuit without K with the intact model: knock K out of "
            "the full model too, and compare the two."
        ): _criteria_against_full_model,
        (
            "Your minimality only knocks v out alone: also try every given K without v first, so that a "
            "node with a backup shows up once the backup is gone."
        ): _criteria_empty_k_only,
        "Your minimality knocks v out of the full model; measure it on the circuit (C minus K).": _criteria_minimality_on_model,
        (
            "Your minimality skips K = the empty set: knocking v out of the whole circuit is one of the "
            "options, and often the largest change."
        ): _criteria_without_empty_k,
    },
)
def check_circuit_criteria(fn) -> None:
    """Your `circuit_criteria` must return the faithfulness, each K's incompleteness and each node's minimality."""
    why = "Return a dict of tensors: later cells index and plot them."
    a, b, c, d, e = Node(0, 0), Node(1, 0), Node(1, 1), Node(2), Node(2, 3)
    verify(
        fn,
        _score_backups,
        [a, b, c, d],
        [a, Node(0, 1), b, c, d, e],
        [[a], [c], [b, d], [b, c]],
        what="the criteria of a circuit whose nodes 1.0 and 1.1 back each other up",
        why=why,
    )
    circuit = [Node(3, 1), Node(7), Node(10, 2), Node(11)]
    verify(
        fn,
        _score_criteria_negative,
        circuit,
        [Node(0, 0), *circuit, Node(11, 3)],
        [[Node(11)], [Node(3, 1), Node(7)]],
        what="the criteria with negative scores (12 layers)",
        why=why,
    )
    verify(
        fn,
        _score_synergy,
        [Node(1, 2), Node(4)],
        [Node(0, 3), Node(1, 2), Node(4)],
        [[Node(4)]],
        what="the criteria of a circuit whose node 1.2 matters most with nothing knocked out",
        why=why,
    )


# --- 3.13 direct effects, for self-repair -----------------------------------------------------------


def _direct_effects_no_norm(model, tokens, io, s, fwd_hooks=()):
    with model.hooks(fwd_hooks):
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
    results = cache.stack_head_results()[:, :, -1]
    return cache.logit_attrs(results, io, s).mean(-1).reshape(model.cfg.n_layers, model.cfg.n_heads)


def _direct_effects_not_centred(model, tokens, io, s, fwd_hooks=()):
    with model.hooks(fwd_hooks):
        _, cache = model.run_with_cache(
            tokens, names_filter=lambda name: name.endswith("attn.hook_z") or name == "ln_final.hook_scale"
        )
    with torch.no_grad():
        results = cache.stack_head_results()[:, :, -1]  # (layer * head, batch, d_model), mean left in
        normed = results / cache["ln_final.hook_scale"][:, -1] * model.norm_module(None).weight
        return cache.logit_attrs(normed, io, s).mean(-1).reshape(model.cfg.n_layers, model.cfg.n_heads)


def _zero_head_2(z: torch.Tensor, hook: Hook) -> torch.Tensor:
    z = z.clone()
    z[:, :, 2] = 0
    return z


@exercise_check(
    reference=head_direct_effects,
    wrong_answers={
        (
            "Your effects skip the final norm: a head's output reaches the logits only after the "
            "final LayerNorm centres it, divides by this run's scale and multiplies by its weight."
        ): _direct_effects_no_norm,
        (
            "Your effects divide by the final scale and multiply by the weight, but skip the centring: the "
            "final LayerNorm subtracts each vector's mean over d_model first (it is linear, so centre each "
            "head's output)."
        ): _direct_effects_not_centred,
        "The hooks in `fwd_hooks` were not active during your run: measure the ablated model.": (
            lambda model, tokens, io, s, fwd_hooks=(): head_direct_effects(model, tokens, io, s)
        ),
        "Your sign is flipped: a head that pushes toward the IO has a positive direct effect.": (
            lambda model, tokens, io, s, fwd_hooks=(): -head_direct_effects(model, tokens, io, s, fwd_hooks)
        ),
        "You summed over the prompts; average them.": (
            lambda model, tokens, io, s, fwd_hooks=(): (
                head_direct_effects(model, tokens, io, s, fwd_hooks) * tokens.shape[0]
            )
        ),
    },
)
def check_head_direct_effects(fn) -> None:
    """Your `head_direct_effects` must give every head's direct effect on the logit difference, with the hooks on."""
    model, data, _ = _tiny_ioi()
    verify(fn, model, data.clean, data.io, data.s, what="the direct effects on 4 clean prompts (2 layers)")
    model, data, _ = _tiny_ioi(12)
    verify(
        fn,
        model,
        data.corrupt,
        data.io,
        data.s,
        [("blocks.10.attn.hook_z", _zero_head_2)],
        what="the direct effects with head 10.2 zeroed (12 layers, 1 corrupt prompt)",
    )
