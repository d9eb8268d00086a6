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
from ..patching import Node, ioi_data, ioi_metric
from ..solutions.ch03 import (
    ablation_value,
    attribution_scores,
    freeze_hook,
    logit_diff,
    normalise,
    patch_head_hook,
    patch_resid_hook,
    patch_resid_once,
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


# --- 3.9 an ACDC-style pruning loop ----------------------------------------------------------


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
