"""Checks for chapter 2: the logit lens, direct logit attribution and the tuned lens.

Every check builds its own inputs from a tiny, seeded, randomly initialised GPT-2 (2 layers,
d_model 16, untied embeddings, random LayerNorm weights and random biases), so a missing LayerNorm,
a wrong scale, a wrong position or a missing constant term always changes the numbers.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from .core import CheckFailed, assert_close, exercise_check, run_learner, seeded_gpt2

N_LAYERS, N_HEADS, D_MODEL, D_VOCAB, N_CTX = 2, 2, 16, 23, 16


@lru_cache(maxsize=1)
def tiny_model():
    """A seeded random 2-layer GPT-2, wrapped with hooks; LayerNorm weights and biases randomised."""
    hooked = seeded_gpt2(vocab_size=D_VOCAB, n_positions=N_CTX, n_embd=D_MODEL, n_layer=N_LAYERS, n_head=N_HEADS,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=1, pad_token_id=0)
    model = hooked.model
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(1 + 0.5 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.5 * torch.randn(module.bias.shape, generator=gen))
            elif getattr(module, "bias", None) is not None and module.bias.ndim == 1:  # Conv1D biases start at 0
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
        model.lm_head.weight.normal_(0, 1, generator=gen)  # untied and larger, so logits differ visibly
    for p in model.parameters():
        p.requires_grad_(False)
    return hooked


@lru_cache(maxsize=1)
def tiny_run():
    """Tokens (3, 8), each prompt's last real position (3,), logits and a full cache of the tiny model."""
    gen = torch.Generator().manual_seed(2)
    tokens = torch.randint(2, D_VOCAB, (3, 8), generator=gen)
    tokens[:, 0] = 1
    final_pos = torch.tensor([6, 3, 5])  # right padding after these positions
    for b, p in enumerate(final_pos.tolist()):
        tokens[b, p + 1 :] = 0
    logits, cache = tiny_model().run_with_cache(tokens)
    return tokens, final_pos, logits, cache


def _answers() -> tuple[Tensor, Tensor]:
    return torch.tensor([5, 9, 14]), torch.tensor([7, 3, 20])


# --- 2.1 the residual stack ----------------------------------------------------------------


def residual_stack_reference(cache, n_layers: int) -> Tensor:
    """resid_pre of every block, then the last resid_post: (n_layers + 1, batch, pos, d_model)."""
    pre = [cache[f"blocks.{l}.hook_resid_pre"] for l in range(n_layers)]
    return torch.stack([*pre, cache[f"blocks.{n_layers - 1}.hook_resid_post"]])


def _stack_resid_post_only(cache, n_layers: int) -> Tensor:
    return torch.stack([cache[f"blocks.{l}.hook_resid_post"] for l in range(n_layers)])


def _stack_resid_pre_only(cache, n_layers: int) -> Tensor:
    return torch.stack([cache[f"blocks.{l}.hook_resid_pre"] for l in range(n_layers)])


def _stack_mid(cache, n_layers: int) -> Tensor:
    mid = [cache[f"blocks.{l}.hook_resid_mid"] for l in range(n_layers)]
    return torch.stack([cache["blocks.0.hook_resid_pre"], *mid])


@exercise_check(
    reference=residual_stack_reference,
    wrong_answers={
        "stacks resid_post only (misses the embeddings)": _stack_resid_post_only,
        "forgets the final resid_post (the model's output)": _stack_resid_pre_only,
        "stacks resid_mid instead of resid_pre / resid_post": _stack_mid,
    },
)
def check_residual_stack(residual_stack) -> None:
    """Your `residual_stack(cache, n_layers)` must stack resid_pre of each block and the final resid_post."""
    _, _, _, cache = tiny_run()
    got = run_learner(residual_stack, cache, N_LAYERS)
    assert_close(got, residual_stack_reference(cache, N_LAYERS), what="the residual stack (layer, batch, pos, d_model)")


# --- 2.2 the logit lens --------------------------------------------------------------------


def logit_lens_reference(model, stack: Tensor) -> Tensor:
    """Final norm (with each entry's own scale), then W_U and b_U: (layer, ..., d_model) -> (layer, ..., d_vocab)."""
    return model.norm_module(None)(stack) @ model.W_U + model.b_U


def _lens_without_ln(model, stack: Tensor) -> Tensor:
    return stack @ model.W_U + model.b_U


def _lens_ln_without_affine(model, stack: Tensor) -> Tensor:
    normed = nn.functional.layer_norm(stack, (stack.shape[-1],), eps=model.cfg.eps)
    return normed @ model.W_U + model.b_U


def _lens_with_embedding(model, stack: Tensor) -> Tensor:
    return model.norm_module(None)(stack) @ model.W_E.T + model.b_U


@exercise_check(
    reference=logit_lens_reference,
    wrong_answers={
        "forgets the final LayerNorm": _lens_without_ln,
        "normalises but drops the LayerNorm's weight and bias": _lens_ln_without_affine,
        "unembeds with W_E.T instead of W_U": _lens_with_embedding,
    },
)
def check_logit_lens(logit_lens) -> None:
    """Your `logit_lens(model, stack)` must apply the final LayerNorm and the unembedding to every entry."""
    model = tiny_model()
    _, _, logits, cache = tiny_run()
    stack = residual_stack_reference(cache, N_LAYERS)
    got = run_learner(logit_lens, model, stack.clone())
    assert_close(got, logit_lens_reference(model, stack), what="the logit lens (layer, batch, pos, d_vocab)")
    assert_close(got[-1], logits, what="the logit lens of the final resid_post (it must be the model's own logits)")


# --- 2.3 probability and rank of the answer --------------------------------------------------


def answer_prob_and_rank_reference(lens_logits: Tensor, final_pos: Tensor, answer_ids: Tensor) -> tuple[Tensor, Tensor]:
    """At each prompt's last real position: p(answer) and its rank (0 = top-1), per layer: (layer, batch) each."""
    batch = torch.arange(lens_logits.shape[1])
    logits = lens_logits[:, batch, final_pos]  # (layer, batch, d_vocab)
    answer = logits[:, batch, answer_ids]  # (layer, batch)
    probs = logits.softmax(-1)[:, batch, answer_ids]
    ranks = (logits > answer[..., None]).sum(-1)
    return probs, ranks


def _rank_at_last_position(lens_logits: Tensor, final_pos: Tensor, answer_ids: Tensor) -> tuple[Tensor, Tensor]:
    last = torch.full_like(final_pos, lens_logits.shape[2] - 1)
    return answer_prob_and_rank_reference(lens_logits, last, answer_ids)


def _rank_at_answer_position(lens_logits: Tensor, final_pos: Tensor, answer_ids: Tensor) -> tuple[Tensor, Tensor]:
    return answer_prob_and_rank_reference(lens_logits, final_pos + 1, answer_ids)


def _rank_from_one(lens_logits: Tensor, final_pos: Tensor, answer_ids: Tensor) -> tuple[Tensor, Tensor]:
    probs, ranks = answer_prob_and_rank_reference(lens_logits, final_pos, answer_ids)
    return probs, ranks + 1


@exercise_check(
    reference=answer_prob_and_rank_reference,
    wrong_answers={
        "reads position -1, which is padding for the shorter prompts": _rank_at_last_position,
        "reads the answer's own position instead of the one that predicts it": _rank_at_answer_position,
        "counts ranks from 1 instead of 0": _rank_from_one,
    },
)
def check_answer_prob_and_rank(answer_prob_and_rank) -> None:
    """Your `answer_prob_and_rank(lens_logits, final_pos, answer_ids)` must read each prompt's own last position."""
    model = tiny_model()
    _, final_pos, _, cache = tiny_run()
    lens_logits = logit_lens_reference(model, residual_stack_reference(cache, N_LAYERS))
    answers, _ = _answers()
    got = run_learner(answer_prob_and_rank, lens_logits.clone(), final_pos.clone(), answers.clone())
    want = answer_prob_and_rank_reference(lens_logits, final_pos, answers)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise CheckFailed("answer_prob_and_rank should return a pair (probs, ranks).")
    assert_close(got[0], want[0], what="p(answer) per layer and prompt (layer, batch)")
    assert_close(got[1], want[1], what="rank of the answer per layer and prompt (layer, batch), 0 = top-1")


# --- 2.4 the final LayerNorm on a stack, with the cached scale ---------------------------------


def apply_ln_to_stack_reference(stack: Tensor, cache, model) -> Tensor:
    """Centre each piece, divide by the cached final scale, multiply by the weight (no bias): same shape."""
    centred = stack - stack.mean(-1, keepdim=True)
    return centred / cache["ln_final.hook_scale"] * model.norm_module(None).weight


def _ln_recomputed_scale(stack: Tensor, cache, model) -> Tensor:
    centred = stack - stack.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
    return centred / scale * model.norm_module(None).weight


def _ln_not_centred(stack: Tensor, cache, model) -> Tensor:
    return stack / cache["ln_final.hook_scale"] * model.norm_module(None).weight


def _ln_bias_everywhere(stack: Tensor, cache, model) -> Tensor:
    return apply_ln_to_stack_reference(stack, cache, model) + model.norm_module(None).bias


def _ln_forgotten(stack: Tensor, cache, model) -> Tensor:
    return stack


@exercise_check(
    reference=apply_ln_to_stack_reference,
    wrong_answers={
        "recomputes the scale for each piece instead of using the cached one": _ln_recomputed_scale,
        "forgets to centre each piece": _ln_not_centred,
        "adds the LayerNorm bias to every piece": _ln_bias_everywhere,
        "forgets the final LayerNorm": _ln_forgotten,
    },
)
def check_apply_ln_to_stack(apply_ln_to_stack) -> None:
    """Your `apply_ln_to_stack(stack, cache, model)` must be linear: the pieces plus the bias give ln_final's output."""
    model = tiny_model()
    _, _, _, cache = tiny_run()
    pieces = cache.decompose_resid()  # (component, batch, pos, d_model), sums to the final resid_post
    got = run_learner(apply_ln_to_stack, pieces.clone(), cache, model)
    assert_close(got, apply_ln_to_stack_reference(pieces, cache, model), what="the normalised pieces")
    total = got.sum(0) + model.norm_module(None).bias
    assert_close(total, cache["ln_final.hook_out"], what="sum of your pieces + the LayerNorm bias vs ln_final's output")


# --- 2.5 every head's contribution -------------------------------------------------------------


def decompose_by_head_reference(cache, model) -> Tensor:
    """embed, pos_embed, then per block: each head's z_h @ W_O[h], the bias b_O, mlp_out.

    Returns (2 + n_layers * (n_heads + 2), batch, pos, d_model); the entries sum to the final resid_post.
    """
    embed = cache["hook_embed"]
    parts = [embed, cache["hook_pos_embed"].expand_as(embed)]
    for l in range(model.cfg.n_layers):
        results = torch.einsum("bphd,hdm->hbpm", cache[f"blocks.{l}.attn.hook_z"], model.W_O[l])
        parts += [*results, model.b_O[l].expand_as(embed), cache[f"blocks.{l}.hook_mlp_out"]]
    return torch.stack(parts)


def _heads_without_bias(cache, model) -> Tensor:
    parts = decompose_by_head_reference(cache, model)
    per_layer = model.cfg.n_heads + 2
    bias_rows = [2 + l * per_layer + model.cfg.n_heads for l in range(model.cfg.n_layers)]
    parts[bias_rows] = 0
    return parts


def _heads_with_bias_each(cache, model) -> Tensor:
    parts = decompose_by_head_reference(cache, model).clone()
    per_layer = model.cfg.n_heads + 2
    for l in range(model.cfg.n_layers):
        heads = slice(2 + l * per_layer, 2 + l * per_layer + model.cfg.n_heads)
        parts[heads] += model.b_O[l]
    return parts


def _heads_without_pos_embed(cache, model) -> Tensor:
    parts = decompose_by_head_reference(cache, model).clone()
    parts[1] = 0
    return parts


@exercise_check(
    reference=decompose_by_head_reference,
    wrong_answers={
        "forgets the attention output bias b_O": _heads_without_bias,
        "adds b_O to every head's output as well": _heads_with_bias_each,
        "forgets the position embedding": _heads_without_pos_embed,
    },
)
def check_decompose_by_head(decompose_by_head) -> None:
    """Your `decompose_by_head(cache, model)` must split the final residual stream into parts that add up."""
    model = tiny_model()
    _, _, _, cache = tiny_run()
    got = run_learner(decompose_by_head, cache, model)
    want = decompose_by_head_reference(cache, model)
    if isinstance(got, Tensor) and got.ndim == 4:
        assert_close(got.sum(0), cache[f"blocks.{N_LAYERS - 1}.hook_resid_post"],
                     what="the sum of your parts vs the final resid_post")
    assert_close(got, want, what="the parts (component, batch, pos, d_model)")


# --- 2.6 direct logit attribution --------------------------------------------------------------


def direct_logit_attribution_reference(
    model, cache, parts: Tensor, correct: Tensor, wrong: Tensor, final_pos: Tensor
) -> Tensor:
    """Each part's direct effect on logit[correct] - logit[wrong] at each prompt's last position.

    parts (component, batch, pos, d_model) summing to the final resid_post. Returns
    (component + 1, batch): the last row is the constant term (LayerNorm bias and b_U).
    """
    batch = torch.arange(parts.shape[1])
    normed = apply_ln_to_stack_reference(parts, cache, model)[:, batch, final_pos]  # (component, batch, d_model)
    direction = (model.W_U[:, correct] - model.W_U[:, wrong]).T  # (batch, d_model)
    attrs = (normed * direction).sum(-1)
    const = direction @ model.norm_module(None).bias + model.b_U[correct] - model.b_U[wrong]
    return torch.cat([attrs, const[None]])


def _dla_without_constant(model, cache, parts, correct, wrong, final_pos) -> Tensor:
    attrs = direct_logit_attribution_reference(model, cache, parts, correct, wrong, final_pos)
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
    return direct_logit_attribution_reference(model, cache, parts, correct, wrong, last)


def _dla_embedding_directions(model, cache, parts, correct, wrong, final_pos) -> Tensor:
    batch = torch.arange(parts.shape[1])
    normed = apply_ln_to_stack_reference(parts, cache, model)[:, batch, final_pos]
    direction = model.W_E[correct] - model.W_E[wrong]
    const = direction @ model.norm_module(None).bias + model.b_U[correct] - model.b_U[wrong]
    return torch.cat([(normed * direction).sum(-1), const[None]])


@exercise_check(
    reference=direct_logit_attribution_reference,
    wrong_answers={
        "leaves out the constant term, so the attributions do not sum to the total": _dla_without_constant,
        "recomputes the LayerNorm scale for each part, so the attributions do not sum to the total": _dla_recomputed_scale,
        "reads position -1, which is padding for the shorter prompts": _dla_last_position,
        "uses rows of W_E instead of columns of W_U": _dla_embedding_directions,
    },
)
def check_direct_logit_attribution(direct_logit_attribution) -> None:
    """Your attributions must match the reference and sum to the model's own logit difference."""
    model = tiny_model()
    _, final_pos, logits, cache = tiny_run()
    parts = decompose_by_head_reference(cache, model)
    correct, wrong = _answers()
    got = run_learner(direct_logit_attribution, model, cache, parts.clone(), correct.clone(), wrong.clone(), final_pos.clone())
    batch = torch.arange(3)
    total = logits[batch, final_pos, correct] - logits[batch, final_pos, wrong]
    if isinstance(got, Tensor) and got.ndim == 2:
        assert_close(got.sum(0), total, what="the sum of your attributions vs the model's logit difference")
    assert_close(got, direct_logit_attribution_reference(model, cache, parts, correct, wrong, final_pos),
                 what="the attributions (component + 1, batch)")


# --- 2.7 KL to the final output -------------------------------------------------------------


def kl_to_final_reference(lens_logits: Tensor, final_logits: Tensor) -> Tensor:
    """Mean over positions of KL(final || lens) per layer. (layer, n, d_vocab), (n, d_vocab) -> (layer,)."""
    final = final_logits.log_softmax(-1)
    return (final.exp() * (final - lens_logits.log_softmax(-1))).sum(-1).mean(-1)


def _kl_reversed(lens_logits: Tensor, final_logits: Tensor) -> Tensor:
    lens = lens_logits.log_softmax(-1)
    return (lens.exp() * (lens - final_logits.log_softmax(-1))).sum(-1).mean(-1)


def _kl_raw_logits(lens_logits: Tensor, final_logits: Tensor) -> Tensor:
    return (final_logits.softmax(-1) * (final_logits - lens_logits)).sum(-1).mean(-1)


def _kl_summed(lens_logits: Tensor, final_logits: Tensor) -> Tensor:
    return kl_to_final_reference(lens_logits, final_logits) * final_logits.shape[0]


@exercise_check(
    reference=kl_to_final_reference,
    wrong_answers={
        "computes KL(lens || final), the other direction": _kl_reversed,
        "uses raw logits instead of log-probabilities": _kl_raw_logits,
        "sums over positions instead of averaging": _kl_summed,
    },
)
def check_kl_to_final(kl_to_final) -> None:
    """Your `kl_to_final(lens_logits, final_logits)` must give the mean KL(final || lens) per layer."""
    gen = torch.Generator().manual_seed(3)
    lens_logits = 3 * torch.randn(4, 6, D_VOCAB, generator=gen)
    final_logits = 3 * torch.randn(6, D_VOCAB, generator=gen) + 2
    got = run_learner(kl_to_final, lens_logits.clone(), final_logits.clone())
    assert_close(got, kl_to_final_reference(lens_logits, final_logits), what="KL(final || lens) per layer")
    same = run_learner(kl_to_final, final_logits[None].clone(), final_logits.clone())
    assert_close(same, torch.zeros(1), what="KL of the final output to itself", atol=1e-5)


# --- 2.8 the tuned lens ---------------------------------------------------------------------


def tuned_lens_logits_reference(model, stack: Tensor, translators: nn.ModuleList) -> Tensor:
    """h + translator_l(h) for every block's resid_pre, the final entry as it is, then the logit lens."""
    translated = [h + t(h) for h, t in zip(stack[:-1], translators)]
    return logit_lens_reference(model, torch.stack([*translated, stack[-1]]))


def _tuned_without_skip(model, stack: Tensor, translators: nn.ModuleList) -> Tensor:
    translated = [t(h) for h, t in zip(stack[:-1], translators)]
    return logit_lens_reference(model, torch.stack([*translated, stack[-1]]))


def _tuned_without_ln(model, stack: Tensor, translators: nn.ModuleList) -> Tensor:
    translated = [h + t(h) for h, t in zip(stack[:-1], translators)]
    return torch.stack([*translated, stack[-1]]) @ model.W_U + model.b_U


def _tuned_shifted(model, stack: Tensor, translators: nn.ModuleList) -> Tensor:
    translated = [h + t(h) for h, t in zip(stack[1:], translators)]
    return logit_lens_reference(model, torch.stack([stack[0], *translated]))


@exercise_check(
    reference=tuned_lens_logits_reference,
    wrong_answers={
        "forgets the skip connection h + ...": _tuned_without_skip,
        "forgets the final LayerNorm": _tuned_without_ln,
        "pairs translator l with the wrong layer": _tuned_shifted,
    },
)
def check_tuned_lens_logits(tuned_lens_logits) -> None:
    """Your `tuned_lens_logits(model, stack, translators)` must translate each layer, then apply the logit lens."""
    model = tiny_model()
    _, _, _, cache = tiny_run()
    stack = residual_stack_reference(cache, N_LAYERS)
    torch.manual_seed(4)
    translators = nn.ModuleList(nn.Linear(D_MODEL, D_MODEL) for _ in range(N_LAYERS))
    with torch.no_grad():
        got = run_learner(tuned_lens_logits, model, stack.clone(), translators)
        want = tuned_lens_logits_reference(model, stack, translators)
    assert_close(got, want, what="the tuned lens logits (layer, batch, pos, d_vocab)")
