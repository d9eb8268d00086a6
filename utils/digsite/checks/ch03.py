"""Checks for chapter 3: activation patching, path patching, attribution patching, circuits.

Every check builds its own small seeded inputs: random tensors, or a tiny random-init
3-layer GPT-2 with the toy-language tokenizer (built once and cached) running real IOI
prompts and their ABC corruptions, so each check takes well under a second and does not
depend on the trained organisms.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..hooks import Hook, HookedModel
from ..patching import Node, ioi_data, ioi_metric
from .core import CheckFailed, assert_close, exercise_check, run_learner, seeded_gpt2

# --- shared inputs ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def tiny_model() -> HookedModel:
    """A seeded random 3-layer, 4-head, 32-wide GPT-2 speaking the toy language."""
    from ..organisms.tokenizer import build_tokenizer

    tok = build_tokenizer()
    return seeded_gpt2(tok, vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=3, n_head=4, n_inner=64,
                       initializer_range=0.2, bos_token_id=1, eos_token_id=1)


@lru_cache(maxsize=1)
def _tiny_ioi():
    """(model, data, metric) for 4 IOI prompts on the tiny model."""
    model = tiny_model()
    data = ioi_data(model, 4, seed=3)
    metric, _, _ = ioi_metric(model, data)
    return model, data, metric


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- 3.1 logit difference --------------------------------------------------------------------


def logit_diff_reference(logits: Tensor, io: Tensor, s: Tensor) -> Tensor:
    """logit(IO) - logit(S) at the last position. logits (batch, pos, d_vocab); io, s (batch,) -> (batch,)."""
    last = logits[:, -1]
    return last.gather(-1, io[:, None]).squeeze(-1) - last.gather(-1, s[:, None]).squeeze(-1)


def _logit_diff_first_position(logits, io, s):
    first = logits[:, 0]
    return first.gather(-1, io[:, None]).squeeze(-1) - first.gather(-1, s[:, None]).squeeze(-1)


def _logit_diff_reversed(logits, io, s):
    return -logit_diff_reference(logits, io, s)


def _logit_diff_log_probs(logits, io, s):
    return logit_diff_reference(logits.log_softmax(-1) * 2, io, s)


def _logit_diff_mean(logits, io, s):
    return logit_diff_reference(logits, io, s).mean()


@exercise_check(
    reference=logit_diff_reference,
    wrong_answers={
        "reads the first position instead of the last": _logit_diff_first_position,
        "S minus IO (the sign flipped)": _logit_diff_reversed,
        "averages over the batch instead of one value per prompt": _logit_diff_mean,
    },
)
def check_logit_diff(logit_diff) -> None:
    """Your `logit_diff(logits, io, s)` must give logit(IO) - logit(S) at the last position, per prompt."""
    g = _gen(31)
    logits = torch.randn(5, 7, 20, generator=g)
    io = torch.randint(0, 20, (5,), generator=g)
    s = (io + 1 + torch.randint(0, 18, (5,), generator=g)) % 20
    assert_close(run_learner(logit_diff, logits.clone(), io, s), logit_diff_reference(logits, io, s),
                 what="the logit difference per prompt")


# --- 3.2 the normalised metric ----------------------------------------------------------------


def normalise_reference(ld: Tensor, clean_ld: float, corrupt_ld: float) -> Tensor:
    """(ld - corrupt_ld) / (clean_ld - corrupt_ld): 1 for the clean run, 0 for the corrupt run."""
    return (ld - corrupt_ld) / (clean_ld - corrupt_ld)


@exercise_check(
    reference=normalise_reference,
    wrong_answers={
        "not normalised (the raw logit difference)": lambda ld, clean_ld, corrupt_ld: ld,
        "divides by the clean logit difference only": lambda ld, clean_ld, corrupt_ld: ld / clean_ld,
        "backwards: 1 for corrupt, 0 for clean": lambda ld, clean_ld, corrupt_ld: (clean_ld - ld) / (clean_ld - corrupt_ld),
    },
)
def check_normalise(normalise) -> None:
    """Your `normalise(ld, clean_ld, corrupt_ld)` must map clean to 1 and corrupt to 0, linearly."""
    ld = torch.tensor([3.0, -1.0, 0.5, 2.25])
    for clean_ld, corrupt_ld in [(3.0, -1.0), (4.5, 1.5)]:
        assert_close(run_learner(normalise, ld.clone(), clean_ld, corrupt_ld), normalise_reference(ld, clean_ld, corrupt_ld),
                     what=f"normalise(ld, clean_ld={clean_ld}, corrupt_ld={corrupt_ld})")


# --- 3.3 a residual-stream patching hook ----------------------------------------------------


def patch_resid_hook_reference(resid: Tensor, hook: Hook, pos: int, clean_cache) -> Tensor:
    """resid (batch, pos, d_model) with position `pos` replaced by clean_cache[hook.name][:, pos]."""
    resid = resid.clone()
    resid[:, pos] = clean_cache[hook.name][:, pos]
    return resid


def _resid_hook_off_by_one(resid, hook, pos, clean_cache):
    return patch_resid_hook_reference(resid, hook, pos + 1 if pos + 1 < resid.shape[1] else pos - 1, clean_cache)


def _resid_hook_all_positions(resid, hook, pos, clean_cache):
    return clean_cache[hook.name].clone()


def _resid_hook_wrong_axis(resid, hook, pos, clean_cache):
    resid = resid.clone()
    resid[pos] = clean_cache[hook.name][pos]
    return resid


@exercise_check(
    reference=patch_resid_hook_reference,
    wrong_answers={
        "patches the wrong position (off by one)": _resid_hook_off_by_one,
        "patches every position": _resid_hook_all_positions,
        "indexes the batch axis instead of the position axis": _resid_hook_wrong_axis,
    },
)
def check_patch_resid_hook(patch_resid_hook) -> None:
    """Your hook must copy the clean residual stream at `pos` (and only there) into the activation."""
    g = _gen(33)
    name = "blocks.1.hook_resid_pre"
    resid, clean = torch.randn(4, 6, 8, generator=g), torch.randn(4, 6, 8, generator=g)
    for pos in (2, 5):
        got = run_learner(patch_resid_hook, resid.clone(), Hook(name), pos, {name: clean})
        assert_close(got, patch_resid_hook_reference(resid, Hook(name), pos, {name: clean}),
                     what=f"the patched residual stream (pos={pos})")


# --- 3.4 one denoising patch ------------------------------------------------------------------


def patch_resid_once_reference(model: HookedModel, clean_tokens: Tensor, corrupt_tokens: Tensor, layer: int, pos: int,
                               metric: Callable[[Tensor], Tensor]) -> float:
    """metric of the corrupt run with blocks.{layer}.hook_resid_pre at `pos` taken from the clean run."""
    name = f"blocks.{layer}.hook_resid_pre"
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=[name])

    def hook(resid: Tensor, hook: Hook) -> Tensor:
        return patch_resid_hook_reference(resid, hook, pos, clean_cache)

    with torch.no_grad():
        return float(metric(model.run_with_hooks(corrupt_tokens, fwd_hooks=[(name, hook)])))


def _patch_corrupt_into_clean(model, clean_tokens, corrupt_tokens, layer, pos, metric):
    return patch_resid_once_reference(model, corrupt_tokens, clean_tokens, layer, pos, metric)


def _patch_resid_post(model, clean_tokens, corrupt_tokens, layer, pos, metric):
    name = f"blocks.{layer}.hook_resid_post"
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=[name])
    with torch.no_grad():
        logits = model.run_with_hooks(corrupt_tokens, fwd_hooks=[(name, lambda r, h: patch_resid_hook_reference(r, h, pos, clean_cache))])
    return float(metric(logits))


def _patch_resid_wrong_pos(model, clean_tokens, corrupt_tokens, layer, pos, metric):
    return patch_resid_once_reference(model, clean_tokens, corrupt_tokens, layer, pos - 1, metric)


@exercise_check(
    reference=patch_resid_once_reference,
    wrong_answers={
        "patches corrupt into clean instead of clean into corrupt": _patch_corrupt_into_clean,
        "patches the wrong position": _patch_resid_wrong_pos,
        "patches resid_post (the block's output) instead of resid_pre": _patch_resid_post,
    },
)
def check_patch_resid_once(patch_resid_once) -> None:
    """Your `patch_resid_once` must run the corrupt prompts with one clean residual vector patched in."""
    model, data, metric = _tiny_ioi()
    for layer, pos in [(1, int(data.pos["S2"][0])), (2, int(data.pos["S1"][0])), (0, int(data.pos["S1"][0]))]:
        got = run_learner(patch_resid_once, model, data.clean, data.corrupt, layer, pos, metric)
        expected = patch_resid_once_reference(model, data.clean, data.corrupt, layer, pos, metric)
        assert_close(got, expected, what=f"the metric after patching layer {layer}, position {pos}", atol=1e-4)


# --- 3.5 a head-patching hook for z, q, k, v and the pattern ---------------------------------


def patch_head_hook_reference(act: Tensor, hook: Hook, head: int, clean_cache) -> Tensor:
    """Replace one head's slice by the clean one. hook_pattern is (batch, head, q, k); z/q/k/v are (batch, pos, head, d_head)."""
    act = act.clone()
    if hook.name.endswith("hook_pattern"):
        act[:, head] = clean_cache[hook.name][:, head]
    else:
        act[:, :, head] = clean_cache[hook.name][:, :, head]
    return act


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
    reference=patch_head_hook_reference,
    wrong_answers={
        "treats the pattern like z (heads on axis 2)": _head_hook_z_layout_only,
        "treats z/q/k/v like the pattern (heads on axis 1)": _head_hook_pattern_layout_only,
        "patches only the last position": _head_hook_last_position,
    },
)
def check_patch_head_hook(patch_head_hook) -> None:
    """Your hook must patch one head, at every position, for hook_z/q/k/v and for hook_pattern."""
    g = _gen(35)
    cases = {
        "blocks.1.attn.hook_z": (3, 6, 4, 5),
        "blocks.2.attn.hook_q": (3, 6, 4, 5),
        "blocks.0.attn.hook_pattern": (3, 4, 6, 6),
    }
    for name, shape in cases.items():
        act, clean = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
        got = run_learner(patch_head_hook, act.clone(), Hook(name), 2, {name: clean})
        assert_close(got, patch_head_hook_reference(act, Hook(name), 2, {name: clean}), what=f"patching head 2 at {name}")


# --- 3.6 path patching: freeze everything but the sender ---------------------------------


def freeze_hook_reference(z: Tensor, hook: Hook, sender: tuple[int, int], clean_cache, corrupt_cache) -> Tensor:
    """hook_z (batch, pos, head, d_head) frozen to the corrupt run, except the sender head, taken from the clean run."""
    z = corrupt_cache[hook.name].clone()
    layer, head = sender
    if hook.layer() == layer:
        z[:, :, head] = clean_cache[hook.name][:, :, head]
    return z


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
    reference=freeze_hook_reference,
    wrong_answers={
        "does not freeze the other heads": _freeze_nothing,
        "freezes to the clean run (nothing is patched)": _freeze_to_clean,
        "patches that head index in every layer, not just the sender's": _freeze_sender_every_layer,
    },
)
def check_freeze_hook(freeze_hook) -> None:
    """Your hook must return the corrupt z everywhere except the sender head, which comes from the clean run."""
    g = _gen(36)
    shape = (2, 5, 4, 3)
    for layer in (0, 1):
        name = f"blocks.{layer}.attn.hook_z"
        z, clean, corrupt = (torch.randn(*shape, generator=g) for _ in range(3))
        got = run_learner(freeze_hook, z.clone(), Hook(name), (1, 3), {name: clean}, {name: corrupt})
        assert_close(got, freeze_hook_reference(z, Hook(name), (1, 3), {name: clean}, {name: corrupt}),
                     what=f"hook_z of layer {layer} with sender 1.3")


# --- 3.7 attribution patching --------------------------------------------------------------


def attribution_scores_reference(clean_z: Tensor, corrupt_z: Tensor, corrupt_grad: Tensor) -> Tensor:
    """Estimated effect of patching each head: sum over batch, pos, d_head of (clean - corrupt) * grad.

    All three (batch, pos, head, d_head). Returns (head,).
    """
    return ((clean_z - corrupt_z) * corrupt_grad).sum(dim=(0, 1, 3))


@exercise_check(
    reference=attribution_scores_reference,
    wrong_answers={
        "drops the activation difference (clean activation times gradient)": lambda c, k, g: (c * g).sum(dim=(0, 1, 3)),
        "the gradient alone": lambda c, k, g: g.sum(dim=(0, 1, 3)),
        "corrupt minus clean (the wrong direction)": lambda c, k, g: ((k - c) * g).sum(dim=(0, 1, 3)),
        "sums over heads instead of d_head": lambda c, k, g: ((c - k) * g).sum(dim=(0, 1, 2)),
    },
)
def check_attribution_scores(attribution_scores) -> None:
    """Your `attribution_scores` must take (clean - corrupt) . gradient, one number per head."""
    g = _gen(37)
    clean, corrupt, grad = (torch.randn(3, 5, 4, 6, generator=g) for _ in range(3))
    assert_close(run_learner(attribution_scores, clean, corrupt, grad), attribution_scores_reference(clean, corrupt, grad),
                 what="the attribution of each head")


# --- 3.8 ablation values ---------------------------------------------------------------------


def ablation_value_reference(clean_acts: Tensor, corrupt_acts: Tensor, kind: str) -> Tensor:
    """What replaces an ablated activation (batch, pos, ...): "zero" -> zeros (1, pos, ...),
    "mean" -> the clean batch's mean at each position (1, pos, ...), "resample" -> the corrupt run's (batch, pos, ...)."""
    if kind == "zero":
        return torch.zeros_like(clean_acts[:1])
    if kind == "mean":
        return clean_acts.mean(0, keepdim=True)
    if kind == "resample":
        return corrupt_acts.clone()
    raise ValueError(kind)


def _ablation_mean_over_positions(clean_acts, corrupt_acts, kind):
    if kind == "mean":
        return clean_acts.mean(dim=(0, 1), keepdim=True).expand_as(clean_acts[:1]).clone()
    return ablation_value_reference(clean_acts, corrupt_acts, kind)


def _ablation_resample_from_clean(clean_acts, corrupt_acts, kind):
    if kind == "resample":
        return clean_acts.clone()
    return ablation_value_reference(clean_acts, corrupt_acts, kind)


@exercise_check(
    reference=ablation_value_reference,
    wrong_answers={
        "mean ablation averages over positions too": _ablation_mean_over_positions,
        "resample ablation takes the clean run's own activations": _ablation_resample_from_clean,
    },
)
def check_ablation_value(ablation_value) -> None:
    """Your `ablation_value` must give zeros, the per-position mean, or the corrupt activations."""
    g = _gen(38)
    clean, corrupt = torch.randn(4, 5, 3, 2, generator=g), torch.randn(4, 5, 3, 2, generator=g)
    for kind in ("zero", "mean", "resample"):
        assert_close(run_learner(ablation_value, clean.clone(), corrupt.clone(), kind),
                     ablation_value_reference(clean, corrupt, kind), what=f"the {kind!r} ablation value")


# --- 3.9 an ACDC-style pruning loop ----------------------------------------------------------


def prune_reference(nodes: Sequence[Node], score: Callable[[list[Node]], float], threshold: float) -> list[Node]:
    """Greedy pruning from the output backwards; a node stays out when removing it costs < threshold."""
    kept = list(nodes)
    current = score(kept)
    for node in reversed(list(nodes)):
        trial = [n for n in kept if n != node]
        value = score(trial)
        if value >= current - threshold:
            kept, current = trial, value
    return kept


def _prune_forwards(nodes, score, threshold):
    kept = list(nodes)
    current = score(kept)
    for node in list(nodes):
        trial = [n for n in kept if n != node]
        value = score(trial)
        if value >= current - threshold:
            kept, current = trial, value
    return kept


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


@exercise_check(
    reference=prune_reference,
    wrong_answers={
        "prunes from the input forwards": _prune_forwards,
        "removes the nodes that matter (the test inverted)": _prune_inverted,
        "compares with the full model's score, not the current circuit's": _prune_against_full,
    },
)
def check_prune(prune) -> None:
    """Your `prune(nodes, score, threshold)` must return the kept nodes, in forward order."""
    a, b, c, d, e = Node(0, 0), Node(0, 1), Node(1, 0), Node(1), Node(2, 1)
    nodes = [a, b, c, d, e]

    def score(keep: list[Node]) -> float:
        s = set(keep)
        value = 0.5 * (a in s or e in s) + 0.3 * (c in s)  # a and e are redundant: only one is needed
        return value + 0.06 * (b in s) + 0.06 * (d in s)  # b and d: small alone, big together

    got = run_learner(prune, list(nodes), score, 0.1)
    if not isinstance(got, list):
        raise CheckFailed(f"`prune` should return a list of nodes, got {type(got).__name__}.")
    expected = prune_reference(nodes, score, 0.1)
    if got != expected:
        raise CheckFailed(f"kept {[str(n) for n in got]}, expected {[str(n) for n in expected]} "
                          "(with threshold 0.1, visiting the latest node first).")
