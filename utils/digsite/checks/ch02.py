"""Checks for chapter 2: the logit lens, direct logit attribution and the tuned lens.

Every check builds its own inputs from a tiny, seeded, randomly initialised GPT-2 (2 layers,
d_model 16, untied embeddings, random LayerNorm weights and random biases), so a missing LayerNorm,
a wrong scale, a wrong position or a missing constant term always changes the numbers.
"""

from __future__ import annotations

from functools import lru_cache, partial

import torch
from torch import Tensor, nn

from .. import lens
from ..fixtures import tiny, tiny_gpt2
from ..solutions.ch02 import (
    answer_prob_and_rank,
    apply_ln_to_stack,
    decompose_by_head,
    direct_logit_attribution,
    head_path_attribution,
    kl_to_final,
    logit_lens,
    residual_stack,
    tuned_lens_logits,
)
from ..threads import one_thread
from .core import CheckFailed, assert_close, exercise_check, verify

D_VOCAB, N_CTX = 23, 16


def tiny_model(n_layer: int = 2):
    """A random GPT-2, hooked: 2 layers with an untied unembedding and large random biases and norm weights,
    or the checks' shared 12-layer model."""
    if n_layer >= 12:
        return tiny(n_layer)
    return tiny_gpt2(
        vocab_size=D_VOCAB,
        n_positions=N_CTX,
        n_embd=16,
        n_layer=n_layer,
        n_head=2,
        tie_word_embeddings=False,
        initializer_range=0.3,
        biases=0.5,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )


@lru_cache(maxsize=2)
def tiny_run(n_layer: int = 2):
    """(model, tokens, final_pos, logits, cache, correct, wrong) for one of the two tiny models.

    The 2-layer run has 3 right-padded prompts; the 12-layer run one prompt with no padding.
    """
    model = tiny_model(n_layer)
    gen = torch.Generator().manual_seed(2 + n_layer)
    batch, pos = (3, 8) if n_layer < 12 else (1, 6)
    tokens = torch.randint(2, D_VOCAB, (batch, pos), generator=gen)
    tokens[:, 0] = 1
    final_pos = torch.tensor([6, 3, 5]) if batch == 3 else torch.tensor([pos - 1])
    for b, p in enumerate(final_pos.tolist()):
        tokens[b, p + 1 :] = 0
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    correct, wrong = (
        (torch.tensor([5, 9, 14]), torch.tensor([7, 3, 20])) if batch == 3 else (torch.tensor([2]), torch.tensor([11]))
    )
    return model, tokens, final_pos, logits, cache, correct, wrong


RUNS = (2, 12)


# --- 2.1 the residual stack ----------------------------------------------------------------


def _stack_resid_post_only(cache, n_layers: int) -> Tensor:
    return torch.stack([cache[f"blocks.{l}.hook_resid_post"] for l in range(n_layers)])


def _stack_resid_pre_only(cache, n_layers: int) -> Tensor:
    return torch.stack([cache[f"blocks.{l}.hook_resid_pre"] for l in range(n_layers)])


def _stack_mid(cache, n_layers: int) -> Tensor:
    mid = [cache[f"blocks.{l}.hook_resid_mid"] for l in range(n_layers)]
    return torch.stack([cache["blocks.0.hook_resid_pre"], *mid])


@exercise_check(
    reference=residual_stack,
    wrong_answers={
        (
            "Your stack starts after block 0: the first entry should be the embeddings, resid_pre of block 0."
        ): _stack_resid_post_only,
        (
            "Your stack stops before the last block's output: add the final resid_post as its last entry."
        ): _stack_resid_pre_only,
        (
            "Your stack uses resid_mid (the stream between attention and MLP); the lens reads the "
            "stream between blocks."
        ): _stack_mid,
    },
)
def check_residual_stack(fn) -> None:
    """Your `residual_stack(cache, n_layers)` must stack resid_pre of each block and the final resid_post."""
    why = "Later cells index it as one tensor (layer, batch, pos, d_model): torch.stack the pieces."
    for n in RUNS:
        cache = tiny_run(n)[4]
        verify(fn, cache, n, what=f"the residual stack of the {n}-layer model (layer, batch, pos, d_model)", why=why)


# --- 2.2 the logit lens --------------------------------------------------------------------


def _lens_without_ln(model, stack: Tensor) -> Tensor:
    return stack @ model.W_U + model.b_U


def _lens_ln_without_affine(model, stack: Tensor) -> Tensor:
    normed = nn.functional.layer_norm(stack, (stack.shape[-1],), eps=model.cfg.eps)
    return normed @ model.W_U + model.b_U


def _lens_with_embedding(model, stack: Tensor) -> Tensor:
    return model.norm_module(None)(stack) @ model.W_E.T + model.b_U


@exercise_check(
    reference=logit_lens,
    wrong_answers={
        "The final LayerNorm is missing: the unembedding was trained on normalised vectors.": _lens_without_ln,
        (
            "You normalised but left out the LayerNorm's own weight and bias; use the model's final norm module itself."
        ): _lens_ln_without_affine,
        (
            "You unembedded with the embedding matrix; this model's unembedding W_U is a separate matrix."
        ): _lens_with_embedding,
    },
)
def check_logit_lens(fn) -> None:
    """Your `logit_lens(model, stack)` must apply the final LayerNorm and the unembedding to every entry."""
    for n in RUNS:
        model, cache = tiny_run(n)[0], tiny_run(n)[4]
        verify(
            fn,
            model,
            residual_stack(cache, n),
            what=f"the logit lens of the {n}-layer model (layer, batch, pos, d_vocab)",
        )


# --- 2.3 probability and rank of the answer --------------------------------------------------


def _rank_at_last_position(lens_logits: Tensor, final_pos: Tensor, answer_ids: Tensor) -> tuple[Tensor, Tensor]:
    last = torch.full_like(final_pos, lens_logits.shape[2] - 1)
    return answer_prob_and_rank(lens_logits, last, answer_ids)


def _rank_at_answer_position(lens_logits: Tensor, final_pos: Tensor, answer_ids: Tensor) -> tuple[Tensor, Tensor]:
    return answer_prob_and_rank(lens_logits, final_pos + 1, answer_ids)


def _rank_from_one(lens_logits: Tensor, final_pos: Tensor, answer_ids: Tensor) -> tuple[Tensor, Tensor]:
    probs, ranks = answer_prob_and_rank(lens_logits, final_pos, answer_ids)
    return probs, ranks + 1


@exercise_check(
    reference=answer_prob_and_rank,
    wrong_answers={
        (
            "Position -1 is padding for the shorter prompts: read each prompt at its own last real position."
        ): _rank_at_last_position,
        (
            "You read the position after the prompt's last token; the prediction of the answer is made "
            "AT the last token."
        ): _rank_at_answer_position,
        "Your ranks start at 1; the exercise counts from 0 (the top token has rank 0).": _rank_from_one,
    },
)
def check_answer_prob_and_rank(fn) -> None:
    """Your `answer_prob_and_rank(lens_logits, final_pos, answer_ids)` must read each prompt's own last position."""
    for n in RUNS:
        model, _, final_pos, _, cache, correct, _ = tiny_run(n)
        lens_logits = logit_lens(model, residual_stack(cache, n)).detach()
        verify(fn, lens_logits, final_pos, correct, what=f"(p(answer), rank) per layer and prompt, {n}-layer model")


# --- 2.4 the final LayerNorm on a stack, with the cached scale ---------------------------------


def _ln_recomputed_scale(stack: Tensor, cache, model) -> Tensor:
    centred = stack - stack.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
    return centred / scale * model.norm_module(None).weight


def _ln_not_centred(stack: Tensor, cache, model) -> Tensor:
    return stack / cache["ln_final.hook_scale"] * model.norm_module(None).weight


def _ln_bias_everywhere(stack: Tensor, cache, model) -> Tensor:
    return apply_ln_to_stack(stack, cache, model) + model.norm_module(None).bias


def _ln_forgotten(stack: Tensor, cache, model) -> Tensor:
    return stack


@exercise_check(
    reference=apply_ln_to_stack,
    wrong_answers={
        (
            "You recomputed the LayerNorm scale from each piece. To keep the pieces adding up, divide "
            "every piece by the SAME scale the model used (it is in the cache)."
        ): _ln_recomputed_scale,
        "The pieces are not centred: LayerNorm subtracts the mean before dividing by the scale.": _ln_not_centred,
        (
            "You added the LayerNorm bias to every piece, so it is counted many times; it belongs to no piece."
        ): _ln_bias_everywhere,
        "The final LayerNorm is missing: the unembedding was trained on normalised vectors.": _ln_forgotten,
    },
)
def check_apply_ln_to_stack(fn) -> None:
    """Your `apply_ln_to_stack(stack, cache, model)` must be linear: the pieces plus the bias give ln_final's output."""
    for n in RUNS:
        model, cache = tiny_run(n)[0], tiny_run(n)[4]
        verify(fn, cache.decompose_resid(), cache, model, what=f"the normalised pieces of the {n}-layer model")


# --- 2.5 every head's contribution -------------------------------------------------------------


def _heads_without_bias(cache, model) -> Tensor:
    parts = decompose_by_head(cache, model)
    per_layer = model.cfg.n_heads + 2
    bias_rows = [2 + l * per_layer + model.cfg.n_heads for l in range(model.cfg.n_layers)]
    parts[bias_rows] = 0
    return parts


def _heads_with_bias_each(cache, model) -> Tensor:
    parts = decompose_by_head(cache, model).clone()
    per_layer = model.cfg.n_heads + 2
    for l in range(model.cfg.n_layers):
        heads = slice(2 + l * per_layer, 2 + l * per_layer + model.cfg.n_heads)
        parts[heads] += model.b_O[l]
    return parts


def _heads_without_pos_embed(cache, model) -> Tensor:
    parts = decompose_by_head(cache, model).clone()
    parts[1] = 0
    return parts


@exercise_check(
    reference=decompose_by_head,
    wrong_answers={
        (
            "The attention output bias b_O is missing, so the parts do not add up to the residual stream."
        ): _heads_without_bias,
        "You added b_O to each head's output; it is added once per layer, as its own part.": _heads_with_bias_each,
        "The position embedding is missing from your parts.": _heads_without_pos_embed,
    },
)
def check_decompose_by_head(fn) -> None:
    """Your `decompose_by_head(cache, model)` must split the final residual stream into parts that add up."""
    for n in RUNS:
        model, cache = tiny_run(n)[0], tiny_run(n)[4]
        verify(fn, cache, model, what=f"the parts (component, batch, pos, d_model) of the {n}-layer model")


# --- 2.6 direct logit attribution --------------------------------------------------------------


def _dla_without_constant(model, cache, parts, correct, wrong, final_pos) -> Tensor:
    attrs = direct_logit_attribution(model, cache, parts, correct, wrong, final_pos)
    attrs[-1] = 0
    return attrs


def _dla_recomputed_scale(model, cache, parts, correct, wrong, final_pos) -> Tensor:
    batch = torch.arange(parts.shape[1])
    normed = _ln_recomputed_scale(parts, cache, model)[:, batch, final_pos]
    direction = (model.W_U[:, correct] - model.W_U[:, wrong]).T
    const = direction @ model.norm_module(None).bias + model.b_U[correct] - model.b_U[wrong]
    return torch.cat([(normed * direction).sum(-1), const[None]])


def _dla_last_position(model, cache, parts, correct, wrong, final_pos) -> Tensor:
    last = torch.full_like(final_pos, parts.shape[2] - 1)
    return direct_logit_attribution(model, cache, parts, correct, wrong, last)


def _dla_embedding_directions(model, cache, parts, correct, wrong, final_pos) -> Tensor:
    batch = torch.arange(parts.shape[1])
    normed = apply_ln_to_stack(parts, cache, model)[:, batch, final_pos]
    direction = model.W_E[correct] - model.W_E[wrong]
    const = direction @ model.norm_module(None).bias + model.b_U[correct] - model.b_U[wrong]
    return torch.cat([(normed * direction).sum(-1), const[None]])


@exercise_check(
    reference=direct_logit_attribution,
    wrong_answers={
        (
            "The constant term (LayerNorm bias and b_U) is missing, so your attributions do not add up "
            "to the logit difference."
        ): _dla_without_constant,
        (
            "You recomputed the LayerNorm scale for each part; use the cached scale so the parts add up to the total."
        ): _dla_recomputed_scale,
        (
            "Position -1 is padding for the shorter prompts: read each prompt at its own last real position."
        ): _dla_last_position,
        (
            "Your logit directions come from the embedding W_E; the logit of a token is read through its column of W_U."
        ): _dla_embedding_directions,
    },
)
def check_direct_logit_attribution(fn) -> None:
    """Your attributions must match the reference (they sum to the model's own logit difference)."""
    for n in RUNS:
        model, _, final_pos, _, cache, correct, wrong = tiny_run(n)
        parts = decompose_by_head(cache, model)
        verify(
            fn,
            model,
            cache,
            parts,
            correct,
            wrong,
            final_pos,
            what=f"the attributions (component + 1, batch), {n}-layer model",
        )
        verify(
            fn,
            model,
            cache,
            parts,
            wrong,
            correct,
            final_pos,
            what=f"the attributions with the answers swapped, {n}-layer model",
        )


# --- 2.7 KL to the final output -------------------------------------------------------------


def _kl_reversed(lens_logits: Tensor, final_logits: Tensor) -> Tensor:
    lens = lens_logits.log_softmax(-1)
    return (lens.exp() * (lens - final_logits.log_softmax(-1))).sum(-1).mean(-1)


def _kl_raw_logits(lens_logits: Tensor, final_logits: Tensor) -> Tensor:
    return (final_logits.softmax(-1) * (final_logits - lens_logits)).sum(-1).mean(-1)


def _kl_summed(lens_logits: Tensor, final_logits: Tensor) -> Tensor:
    return kl_to_final(lens_logits, final_logits) * final_logits.shape[0]


@exercise_check(
    reference=kl_to_final,
    wrong_answers={
        (
            "Your KL runs the other way, KL(lens || final); the final distribution is the reference, so "
            "it weights the sum."
        ): _kl_reversed,
        "Your KL uses raw logits; turn both into log-probabilities first (log_softmax).": _kl_raw_logits,
        "Your KL adds up over positions; the exercise averages.": _kl_summed,
    },
)
def check_kl_to_final(fn) -> None:
    """Your `kl_to_final(lens_logits, final_logits)` must give the mean KL(final || lens) per layer."""
    gen = torch.Generator().manual_seed(3)
    verify(
        fn,
        3 * torch.randn(4, 6, D_VOCAB, generator=gen),
        3 * torch.randn(6, D_VOCAB, generator=gen) + 2,
        what="KL(final || lens) per layer (4 layers, 6 positions)",
    )
    verify(
        fn,
        torch.randn(13, 1, 7, generator=gen),
        2 * torch.randn(1, 7, generator=gen),
        what="KL(final || lens) per layer (13 layers, 1 position)",
    )


# --- 2.8 the tuned lens ---------------------------------------------------------------------


def _tuned_without_skip(model, stack: Tensor, translators: nn.ModuleList) -> Tensor:
    translated = [t(h) for h, t in zip(stack[:-1], translators)]
    return logit_lens(model, torch.stack([*translated, stack[-1]]))


def _tuned_without_ln(model, stack: Tensor, translators: nn.ModuleList) -> Tensor:
    translated = [h + t(h) for h, t in zip(stack[:-1], translators)]
    return torch.stack([*translated, stack[-1]]) @ model.W_U + model.b_U


def _tuned_shifted(model, stack: Tensor, translators: nn.ModuleList) -> Tensor:
    translated = [h + t(h) for h, t in zip(stack[1:], translators)]
    return logit_lens(model, torch.stack([stack[0], *translated]))


@exercise_check(
    reference=tuned_lens_logits,
    wrong_answers={
        "The translator's output replaces h; the tuned lens adds it to h (a skip connection).": _tuned_without_skip,
        "The final LayerNorm is missing: the unembedding was trained on normalised vectors.": _tuned_without_ln,
        "Translator l belongs to layer l; yours are paired with the next layer.": _tuned_shifted,
    },
)
def check_tuned_lens_logits(fn) -> None:
    """Your `tuned_lens_logits(model, stack, translators)` must translate each layer, then apply the logit lens."""
    for n in RUNS:
        model, cache = tiny_run(n)[0], tiny_run(n)[4]
        torch.manual_seed(4 + n)
        d = model.cfg.d_model
        translators = nn.ModuleList(nn.Linear(d, d) for _ in range(n)).requires_grad_(False)
        verify(fn, model, residual_stack(cache, n), translators, what=f"the tuned lens logits of the {n}-layer model")


# --- 2.9 the tuned lens's training loop -------------------------------------------------------


def _package_trainer(model, stack: Tensor, final_logits: Tensor, steps: int, batch_size: int, lr: float, seed: int):
    """The package's own trainer, `lens.train_tuned_lens`, in the exercise's signature: the reference."""
    tuned, losses = lens.train_tuned_lens(
        model, stack, final_logits, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=False
    )
    return tuned.translators, losses


def _zeroed(translators: nn.ModuleList) -> nn.ModuleList:
    for t in translators:
        nn.init.zeros_(t.weight)
        nn.init.zeros_(t.bias)
    return translators


def _loop(
    model, stack, final_logits, steps, batch_size, lr, seed, *, init=_zeroed, zero_grad=True, reseed=False, loss_of=None
):
    """A training loop written as a learner would, with one switch per plausible mistake."""
    d = stack.shape[-1]
    translators = init(nn.ModuleList(nn.Linear(d, d) for _ in range(stack.shape[0] - 1)))
    opt = torch.optim.Adam(translators.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        if reseed:
            gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(stack.shape[1], (batch_size,), generator=gen)
        lens_logits = tuned_lens_logits(model, stack[:, idx], translators)[:-1]
        loss = (loss_of or (lambda a, b: kl_to_final(a, b).sum()))(lens_logits, final_logits[idx])
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return translators, losses


def _train_no_zero_grad(model, stack, final_logits, steps, batch_size, lr, seed):
    return _loop(model, stack, final_logits, steps, batch_size, lr, seed, zero_grad=False)


def _identity_weights(translators: nn.ModuleList) -> nn.ModuleList:
    for t in _zeroed(translators):
        nn.init.eye_(t.weight)
    return translators


def _train_identity_weight(model, stack, final_logits, steps, batch_size, lr, seed):
    return _loop(model, stack, final_logits, steps, batch_size, lr, seed, init=_identity_weights)


def _train_reseeded(model, stack, final_logits, steps, batch_size, lr, seed):
    return _loop(model, stack, final_logits, steps, batch_size, lr, seed, reseed=True)


def _train_reversed_kl(model, stack, final_logits, steps, batch_size, lr, seed):
    return _loop(model, stack, final_logits, steps, batch_size, lr, seed, loss_of=lambda a, b: _kl_reversed(a, b).sum())


def _train_mean_over_layers(model, stack, final_logits, steps, batch_size, lr, seed):
    return _loop(model, stack, final_logits, steps, batch_size, lr, seed, loss_of=lambda a, b: kl_to_final(a, b).mean())


def _trained(result) -> dict[str, Tensor]:
    """For `verify(use=...)`: the translators' weights and biases and the loss curve, as tensors."""
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(
            f"train_translators should return (translators, losses), got {type(result).__name__}: later cells "
            "unpack both.",
            kind="type",
        )
    translators, losses = result
    if not isinstance(translators, nn.ModuleList) or not all(isinstance(t, nn.Linear) for t in translators):
        raise CheckFailed(
            "The translators should be an nn.ModuleList of nn.Linear(d_model, d_model): tuned_lens_logits and "
            f"lens.TunedLens read them that way; got {type(translators).__name__}.",
            kind="type",
        )
    return {
        "translator weights (layer, d_model, d_model)": torch.stack([t.weight.detach() for t in translators]),
        "translator biases (layer, d_model)": torch.stack([t.bias.detach() for t in translators]),
        "the loss of every step": torch.tensor([float(v) for v in losses], dtype=torch.float64),
    }


@exercise_check(
    reference=_package_trainer,
    wrong_answers={
        (
            "Your gradients pile up from step to step: clear them (the optimiser's zero_grad) before each "
            "backward pass."
        ): _train_no_zero_grad,
        (
            "Your translators start with an identity weight, so the tuned lens starts at h + h = 2h. The skip "
            "connection already keeps h: the identity translation is a translator with zero weight and bias."
        ): _train_identity_weight,
        (
            "Every step of yours draws the same positions: seed the generator once, before the loop, and keep "
            "drawing from it."
        ): _train_reseeded,
        (
            "Your loss is KL(lens || final); the tuned lens is trained on KL(final || lens), the model's "
            "distribution weighting the sum."
        ): _train_reversed_kl,
        (
            "Your loss averages the layers' KLs; the loss is their sum (your curve comes out n_layers times too small)."
        ): _train_mean_over_layers,
    },
)
def check_train_translators(fn) -> None:
    """`train_translators(...)` must train the same translators, with the same loss curve, as lens.train_tuned_lens."""
    with one_thread():
        for n, (steps, batch_size, lr, seed) in zip(RUNS, ((12, 16, 3e-2, 0), (6, 5, 1e-2, 7))):
            model, cache = tiny_run(n)[0], tiny_run(n)[4]
            stack = residual_stack(cache, n).flatten(1, 2)
            final_logits = tiny_run(n)[3].flatten(0, 1)
            verify(
                fn,
                model,
                stack,
                final_logits,
                steps,
                batch_size,
                lr,
                seed,
                use=_trained,
                what=f"the trained translators and losses ({n}-layer model, {steps} steps of {batch_size} positions, "
                f"lr {lr}, seed {seed})",
                atol=1e-4,
                rtol=1e-4,
            )


# --- 2.10 one head's credit, traced back through its values ----------------------------------


def _path(
    model,
    cache,
    parts,
    layer,
    head,
    correct,
    wrong,
    final_pos,
    *,
    centre=True,
    own_scale=False,
    column=False,
    constant=True,
    final_ln=True,
    remainder=False,
) -> Tensor:
    """Path attribution written as a learner would, with one switch per plausible mistake."""
    batch = torch.arange(parts.shape[1])
    ln1 = model.norm_module(layer)
    W_V, W_O = model.W_V[layer, head], model.W_O[layer, head]
    x = parts - parts.mean(-1, keepdim=True) if centre else parts
    scale = (
        (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        if own_scale
        else cache[f"blocks.{layer}.ln1.hook_scale"]
    )
    part_v = (x / scale * ln1.weight) @ W_V
    explained = part_v.sum(0) if remainder else (cache[f"blocks.{layer}.ln1.hook_out"] - ln1.bias) @ W_V
    const_v = cache[f"blocks.{layer}.attn.hook_v"][:, :, head] - explained  # remainder: whatever the parts miss
    values = torch.cat([part_v, const_v[None] * constant])
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]
    weights = pattern[batch, :, final_pos] if column else pattern[batch, final_pos]
    out = (values * weights[..., None]) @ W_O
    if final_ln:
        out = (out - out.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][batch, final_pos][:, None]
        out = out * model.norm_module(None).weight
    direction = (model.W_U[:, correct] - model.W_U[:, wrong]).T
    return (out * direction[:, None]).sum(-1)


def _path_not_centred(*args) -> Tensor:
    return _path(*args, centre=False)


def _path_not_centred_remainder(*args) -> Tensor:
    return _path(*args, centre=False, remainder=True)


def _path_own_scale(*args) -> Tensor:
    return _path(*args, own_scale=True)


def _path_pattern_column(*args) -> Tensor:
    return _path(*args, column=True)


def _path_without_constant(*args) -> Tensor:
    return _path(*args, constant=False)


def _path_without_final_ln(*args) -> Tensor:
    return _path(*args, final_ln=False)


def _path_last_position(model, cache, parts, layer, head, correct, wrong, final_pos) -> Tensor:
    last = torch.full_like(final_pos, parts.shape[2] - 1)
    return head_path_attribution(model, cache, parts, layer, head, correct, wrong, last)


def _adds_up(got: Tensor, expected: Tensor, what: str, atol: float, rtol: float, *, total: Tensor) -> None:
    """Compare entry by entry; on a mismatch, say first whether the rows even add up to the head's credit."""
    if isinstance(got, Tensor) and got.shape == expected.shape and got.dtype.is_floating_point:
        gap = (got.detach().sum((0, 2)) - total).abs().max().item()
        if gap > 1e-3:
            try:
                assert_close(got, expected, what, atol=atol, rtol=rtol)
            except CheckFailed as err:
                raise CheckFailed(
                    f"{err} Your rows do not add up to the head's direct logit attribution either (off by up to "
                    f"{gap:.3g}).",
                    kind=err.kind,
                ) from None
    assert_close(got, expected, what, atol=atol, rtol=rtol)


@exercise_check(
    reference=head_path_attribution,
    wrong_answers={
        (
            "Your parts are not centred before ln1's scale: LayerNorm subtracts each vector's mean first, and "
            "with a frozen scale that centring is applied to every part."
        ): _path_not_centred,
        (
            "Your rows add up, but they split the credit wrongly: your parts were not centred before ln1's "
            "scale, and your last row, computed as what the parts leave over, absorbed the difference. Centre "
            "each part (LayerNorm subtracts each vector's mean first)."
        ): _path_not_centred_remainder,
        (
            "You recomputed ln1's scale from each part; freeze it at the scale the model used (the cache has "
            "it), or the parts stop being a linear split."
        ): _path_own_scale,
        (
            "Your attention weights are a column of the pattern: the query is the prompt's last position, so "
            "the weights over source positions are the row pattern[b, head, final_pos[b], :]."
        ): _path_pattern_column,
        (
            "The last row is zero: ln1's bias and the value bias also travel through the head, so the rows "
            "miss part of the head's credit."
        ): _path_without_constant,
        (
            "The head's output goes straight to the unembedding in your answer; it first passes the final "
            "LayerNorm (centred, divided by the cached final scale, times its weight), as in 2.6."
        ): _path_without_final_ln,
        (
            "Position -1 is padding for the shorter prompts: read each prompt at its own last real position."
        ): _path_last_position,
    },
)
def check_head_path_attribution(fn) -> None:
    """`head_path_attribution(...)` must split one head's direct attribution exactly, by part and source position."""
    cases = (
        (2, 1, 1, False, "every head of block 0 and both embeddings"),
        (12, 7, 2, True, "whole blocks (cache.decompose_resid)"),
        (2, 0, 0, True, "the two embeddings"),
    )
    for n, layer, head, swap, split in cases:
        model, _, final_pos, _, cache, correct, wrong = tiny_run(n)
        if swap:
            correct, wrong = wrong, correct
        if split.startswith("whole"):
            parts = cache.decompose_resid(layer=layer)
        else:
            parts = decompose_by_head(cache, model)[: 2 + layer * (model.cfg.n_heads + 2)]
        heads = decompose_by_head(cache, model)
        row = 2 + layer * (model.cfg.n_heads + 2) + head
        total = direct_logit_attribution(model, cache, heads, correct, wrong, final_pos)[row].detach()
        verify(
            fn,
            model,
            cache,
            parts,
            layer,
            head,
            correct,
            wrong,
            final_pos,
            compare=partial(_adds_up, total=total),
            what=f"L{layer}H{head}'s paths (component + 1, batch, pos) in the {n}-layer model, parts: {split}",
        )
