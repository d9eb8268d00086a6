"""Checks for chapter 5, modular arithmetic: the Fourier basis, projections, key frequencies,
neuron activations over (a, b), the cos(w(a + b - c)) logit terms, frequency ablation, the
neurons' logit spectrum read from the weights, and the restricted / excluded loss.

The references live in `digsite.fourier`; the checks build their own small inputs (p = 7 or
13, random seeded tensors, a tiny random-init 1-layer GPT-2), so none needs trained weights.
"""

from __future__ import annotations

import math

import torch

from .. import fourier
from ..fixtures import tiny_gpt2
from ..solutions.ch05 import (
    ablate_frequencies,
    cos_logit_terms,
    fourier_2d,
    fourier_basis,
    key_frequencies,
    neuron_acts,
    neuron_logit_spectrum,
    progress_losses,
    project_onto_basis,
)
from .core import exercise_check, verify

# --- 5.1 the Fourier basis ---------------------------------------------------------------


def _basis_unnormalised(p: int) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float32)
    rows = [torch.ones(p)]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    return torch.stack(rows[:p])


def _basis_sin_cos_swapped(p: int) -> torch.Tensor:
    b = fourier_basis(p)
    idx = [0] + [i for k in range(1, p // 2 + 1) for i in (2 * k, 2 * k - 1)]
    return b[idx[:p]]


def _basis_off_by_one(p: int) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float32)
    rows = [torch.ones(p)]
    for k in range(p // 2):  # frequencies 0 .. (p-3)/2 instead of 1 .. (p-1)/2
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    basis = torch.stack(rows[:p])
    return basis / basis.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _basis_transposed(p: int) -> torch.Tensor:
    return fourier_basis(p).T


@exercise_check(
    reference=fourier_basis,
    wrong_answers={
        (
            "Your basis vectors are not unit length: divide each row by its norm so the basis is orthonormal."
        ): _basis_unnormalised,
        "Your sin and cos rows are swapped: for each frequency k, cos comes first, then sin.": _basis_sin_cos_swapped,
        (
            "Your frequencies start at 0; the constant row already covers frequency 0, so cos/sin start at k = 1."
        ): _basis_off_by_one,
        "Your basis vectors are columns; the exercise wants one basis vector per row.": _basis_transposed,
    },
)
def check_fourier_basis(fn) -> None:
    """`fourier_basis(p)` must return the (p, p) orthonormal basis, rows const, cos 1, sin 1, cos 2, ..."""
    for p in (7, 13):
        verify(fn, p, what=f"fourier_basis({p})", atol=1e-5)


# --- 5.2 projecting the embedding ---------------------------------------------------------


def _project_wrong_axis(W: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return W @ basis.T


def _project_inverse(W: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return basis.T @ W


def _project_rebuilt_unnormalised(W: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return _basis_unnormalised(W.shape[0]) @ W


@exercise_check(
    reference=project_onto_basis,
    wrong_answers={
        (
            "You transformed along the d_model axis; the Fourier transform runs along the token axis (the first)."
        ): _project_wrong_axis,
        "basis.T @ W is the inverse transform; the coefficients are basis @ W.": _project_inverse,
        "Your result matches an unnormalised basis: use the orthonormal basis you were given.": _project_rebuilt_unnormalised,
    },
)
def check_project_onto_basis(fn) -> None:
    """`project_onto_basis(W, basis)` must express W (p, d) in the Fourier basis along its first axis."""
    gen = torch.Generator().manual_seed(5)
    for p, d in ((13, 13), (7, 24)):
        verify(fn, torch.randn(p, d, generator=gen), fourier_basis(p), what=f"W ({p}, {d}) in the Fourier basis")


# --- 5.3 key frequencies --------------------------------------------------------------------


def _key_freqs_indices(W_fourier: torch.Tensor, n: int) -> list[int]:
    top = fourier.frequency_norms(W_fourier).topk(n).indices  # forgot the +1
    return sorted(int(k) for k in top)


def _key_freqs_cos_only(W_fourier: torch.Tensor, n: int) -> list[int]:
    cos_norms = W_fourier[1::2].norm(dim=-1)
    return sorted(int(k) + 1 for k in cos_norms.topk(n).indices)


def _key_freqs_rows(W_fourier: torch.Tensor, n: int) -> list[int]:
    rows = W_fourier.norm(dim=-1).topk(n).indices  # the n strongest rows, constant included
    return sorted({(int(r) + 1) // 2 for r in rows})


def _spectrum(p: int, d: int, strong: dict[int, tuple[float, float]], seed: int) -> torch.Tensor:
    """Fourier coefficients (p, d): small noise, a large constant, and (cos, sin) strengths per frequency."""
    gen = torch.Generator().manual_seed(seed)
    W = 0.05 * torch.randn(p, d, generator=gen)
    W[0] += 3.0  # a big constant term: not a frequency
    for k, (cos, sin) in strong.items():
        W[2 * k - 1] += cos * torch.randn(d, generator=gen)
        W[2 * k] += sin * torch.randn(d, generator=gen)
    return W


@exercise_check(
    reference=key_frequencies,
    wrong_answers={
        "Your frequencies are one too small: index 0 of the per-frequency norms is frequency 1.": _key_freqs_indices,
        (
            "You ranked frequencies by their cos row alone; a frequency's strength combines its cos AND sin rows."
        ): _key_freqs_cos_only,
        (
            "You ranked single rows: the constant row is not a frequency, and cos and sin of one "
            "frequency count together."
        ): _key_freqs_rows,
    },
)
def check_key_frequencies(fn) -> None:
    """`key_frequencies(W_fourier, n)` must return the n frequencies of largest cos+sin norm, sorted."""
    why = "Return a list of ints: later cells loop over the frequencies."
    W = _spectrum(13, 16, {2: (1.0, 1.0), 3: (0.5, 0.0), 5: (0.0, 1.6), 6: (0.9, 0.9)}, seed=3)
    verify(
        fn,
        W,
        3,
        what="key_frequencies(W, n=3) with strong frequencies 2, 5 (sin only), 6 and a weaker 3 (cos only)",
        why=why,
    )
    W = _spectrum(11, 5, {1: (1.2, 0.0), 4: (0.7, 0.7)}, seed=4)
    verify(fn, W, 2, what="key_frequencies(W, n=2) with strong frequencies 1 (cos only), 4", why=why)


# --- 5.4 neuron activations over (a, b) ----------------------------------------------------


def _tiny_modadd_model(p: int = 7):
    """A random-init 1-layer GPT-2 with the organism's layout (vocab p + 1), wrapped with hooks."""
    return tiny_gpt2(
        vocab_size=p + 1,
        n_positions=3,
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_inner=24 if p == 7 else 10,
        activation_function="relu",
        biases=0.2,
        seed=p,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def _acts_pre_relu(model, p: int) -> torch.Tensor:
    tokens, _ = fourier.all_pairs(p)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_pre")
    return cache["blocks.0.mlp.hook_pre"][:, -1].reshape(p, p, -1)


def _acts_wrong_position(model, p: int) -> torch.Tensor:
    tokens, _ = fourier.all_pairs(p)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")
    return cache["blocks.0.mlp.hook_post"][:, 1].reshape(p, p, -1)


def _acts_b_major(model, p: int) -> torch.Tensor:
    return neuron_acts(model, p).transpose(0, 1)


@exercise_check(
    reference=neuron_acts,
    wrong_answers={
        "These are the activations before the ReLU (hook_pre); the exercise wants hook_post.": _acts_pre_relu,
        (
            "You read the activations at b's position; the answer is computed at the '=' position, the last."
        ): _acts_wrong_position,
        "Your result is indexed [b, a]; the exercise wants [a, b] (the first operand first).": _acts_b_major,
    },
)
def check_neuron_acts(fn) -> None:
    """`neuron_acts(model, p)` must return post-ReLU MLP activations at "=" as (p, p, d_mlp), indexed [a, b]."""
    for p in (7, 5):
        verify(fn, _tiny_modadd_model(p), p, what=f"neuron activations of a tiny random model (p = {p})")


# --- 5.5 the 2-D Fourier transform ---------------------------------------------------------


def _fourier_2d_one_axis(acts: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ia,ab...->ib...", basis, acts)


def _fourier_2d_inverse(acts: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ai,bj,ab...->ij...", basis, basis, acts)


def _fourier_2d_swapped(acts: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ia,jb,ba...->ij...", basis, basis, acts)


@exercise_check(
    reference=fourier_2d,
    wrong_answers={
        "You transformed only the a axis; transform both a and b.": _fourier_2d_one_axis,
        "You applied the inverse transform (the basis transposed).": _fourier_2d_inverse,
        "Your a and b axes are swapped: entry [i, j] pairs basis_i(a) with basis_j(b).": _fourier_2d_swapped,
    },
)
def check_fourier_2d(fn) -> None:
    """`fourier_2d(acts, basis)` must transform acts (p, p, n) over both a and b: [i, j] <-> basis_i(a) basis_j(b)."""
    gen = torch.Generator().manual_seed(7)
    for p, n in ((13, 5), (7, 1)):
        verify(
            fn,
            torch.randn(p, p, n, generator=gen),
            fourier_basis(p),
            what=f"the 2-D Fourier transform of random ({p}, {p}, {n}) activations",
        )


# --- 5.6 the logit terms cos(w(a + b - c)) --------------------------------------------------


def _cos_terms_sin(p: int, freqs) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float64)
    abc = x[:, None, None] + x[None, :, None] - x[None, None, :]
    k = torch.tensor(list(freqs), dtype=torch.float64)[:, None, None, None]
    return torch.sin(2 * math.pi * k * abc / p).float()


def _cos_terms_plus_c(p: int, freqs) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float64)
    abc = x[:, None, None] + x[None, :, None] + x[None, None, :]
    k = torch.tensor(list(freqs), dtype=torch.float64)[:, None, None, None]
    return torch.cos(2 * math.pi * k * abc / p).float()


def _cos_terms_off_by_one(p: int, freqs) -> torch.Tensor:
    return cos_logit_terms(p, [k + 1 for k in freqs])


def _cos_terms_no_2pi(p: int, freqs) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float64)
    abc = x[:, None, None] + x[None, :, None] - x[None, None, :]
    k = torch.tensor(list(freqs), dtype=torch.float64)[:, None, None, None]
    return torch.cos(k * abc / p).float()


@exercise_check(
    reference=cos_logit_terms,
    wrong_answers={
        "You used sin; the logit terms are cosines.": _cos_terms_sin,
        "You used a + b + c; the terms peak when c = a + b, so use a + b - c.": _cos_terms_plus_c,
        "Your frequencies are shifted by one: use the k values you were given.": _cos_terms_off_by_one,
        "The 2π is missing: the angle is 2π k (a + b - c) / p.": _cos_terms_no_2pi,
    },
)
def check_cos_logit_terms(fn) -> None:
    """`cos_logit_terms(p, freqs)` must return cos(2 pi k (a + b - c) / p), shape (len(freqs), p, p, p)."""
    for p, freqs in ((7, [1, 3]), (13, [2, 5, 6])):
        verify(fn, p, freqs, what=f"cos_logit_terms({p}, {freqs})", atol=1e-5)


# --- 5.7 ablating frequencies --------------------------------------------------------------


def _ablate_cos_only(W: torch.Tensor, basis: torch.Tensor, remove) -> torch.Tensor:
    coeffs = basis @ W
    for k in remove:
        coeffs[2 * k - 1] = 0.0
    return basis.T @ coeffs


def _ablate_off_by_one_rows(W: torch.Tensor, basis: torch.Tensor, remove) -> torch.Tensor:
    coeffs = basis @ W
    for k in remove:
        coeffs[2 * k : 2 * k + 2] = 0.0
    return basis.T @ coeffs


def _ablate_not_projected_back(W: torch.Tensor, basis: torch.Tensor, remove) -> torch.Tensor:
    coeffs = basis @ W
    for k in remove:
        coeffs[2 * k - 1 : 2 * k + 1] = 0.0
    return coeffs


def _ablate_wrong_inverse(W: torch.Tensor, basis: torch.Tensor, remove) -> torch.Tensor:
    coeffs = basis @ W
    for k in remove:
        coeffs[2 * k - 1 : 2 * k + 1] = 0.0
    return basis @ coeffs


@exercise_check(
    reference=ablate_frequencies,
    wrong_answers={
        "You removed only the cos row of each frequency; remove its sin row as well.": _ablate_cos_only,
        "You zeroed rows 2k and 2k+1; frequency k lives in rows 2k-1 (cos) and 2k (sin).": _ablate_off_by_one_rows,
        "You returned the Fourier coefficients; transform them back to W's own basis.": _ablate_not_projected_back,
        "You transformed back with basis; the inverse of an orthonormal basis is its transpose.": _ablate_wrong_inverse,
    },
)
def check_ablate_frequencies(fn) -> None:
    """`ablate_frequencies(W, basis, remove)` must return W (p, d) with frequencies `remove` projected out."""
    gen = torch.Generator().manual_seed(11)
    for p, d, remove in ((13, 10, [3]), (13, 10, [1, 4, 6]), (7, 2, [2])):
        verify(
            fn,
            torch.randn(p, d, generator=gen),
            fourier_basis(p),
            remove,
            what=f"W ({p}, {d}) with frequencies {remove} removed",
        )


# --- 5.8 the neurons' logit spectrum, from the weights ---------------------------------------


def _W_out(model) -> torch.Tensor:
    return model.model.transformer.h[0].mlp.c_proj.weight.detach().float()


def _spectrum_of(neuron_logits: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    sq = (basis @ neuron_logits.T).pow(2)[1:]
    return sq[0::2] + sq[1::2]


def _spectrum_no_ln(model, p: int, basis: torch.Tensor) -> torch.Tensor:
    return _spectrum_of(_W_out(model) @ model.W_U[:, :p].detach(), basis)


def _spectrum_no_centring(model, p: int, basis: torch.Tensor) -> torch.Tensor:
    W = _W_out(model) * model.norm_module().weight.detach()
    return _spectrum_of(W @ model.W_U[:, :p].detach(), basis)


def _spectrum_no_ln_weight(model, p: int, basis: torch.Tensor) -> torch.Tensor:
    W = _W_out(model)
    return _spectrum_of((W - W.mean(dim=1, keepdim=True)) @ model.W_U[:, :p].detach(), basis)


def _spectrum_rows_shifted(model, p: int, basis: torch.Tensor) -> torch.Tensor:
    W = _W_out(model)
    W = (W - W.mean(dim=1, keepdim=True)) * model.norm_module().weight.detach()
    sq = (basis @ (W @ model.W_U[:, :p].detach()).T).pow(2)
    return sq[0:-1:2] + sq[1::2]  # pairs (const, cos 1), (sin 1, cos 2), ...


@exercise_check(
    reference=neuron_logit_spectrum,
    wrong_answers={
        (
            "Your spectrum skips the final LayerNorm: it centres each vector over d_model and multiplies "
            "by its weight, both linear, so they belong in the neuron-to-logit map."
        ): _spectrum_no_ln,
        (
            "You applied the LayerNorm's weight but not its centring: a LayerNorm first subtracts the mean over d_model."
        ): _spectrum_no_centring,
        "You centred W_out but left out the final LayerNorm's weight.": _spectrum_no_ln_weight,
        (
            "Your frequency rows are paired one off: after dropping the constant row, frequency k is "
            "the pair (cos k, sin k) at rows 2k-1 and 2k of the basis."
        ): _spectrum_rows_shifted,
    },
)
def check_neuron_logit_spectrum(fn) -> None:
    """`neuron_logit_spectrum(model, p, basis)` must return (n_freq, d_mlp): each neuron's logit effect per frequency."""
    for p in (7, 5):
        verify(
            fn,
            _tiny_modadd_model(p),
            p,
            fourier_basis(p),
            what=f"the neuron-to-logit spectrum of a tiny random model (p = {p}, random LayerNorm weights)",
            atol=1e-12,  # the values are small (random init weights): compare relatively
            rtol=1e-4,
        )


# --- 5.9 restricted and excluded loss -------------------------------------------------------


def _directions(p: int, key_freqs, normalise: bool = True) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float64)
    a, b = x.repeat_interleave(p), x.repeat(p)
    rows = []
    for k in key_freqs:
        angle = 2 * math.pi * k * (a + b) / p
        rows += [torch.cos(angle), torch.sin(angle)]
    D = torch.stack(rows)
    return D / D.norm(dim=1, keepdim=True) if normalise else D


def _losses_from(logits, restricted_logits, excluded_logits, train_idx, excluded_rows=None):
    p = logits.shape[-1]
    x = torch.arange(p)
    labels = (x.repeat_interleave(p) + x.repeat(p)) % p
    rows = train_idx if excluded_rows is None else excluded_rows
    return (
        torch.nn.functional.cross_entropy(restricted_logits.float(), labels),
        torch.nn.functional.cross_entropy(excluded_logits[rows].float(), labels[rows]),
    )


def _losses_excluded_on_all(logits, key_freqs, train_idx):
    D, L = _directions(logits.shape[-1], key_freqs), logits.double()
    key = D.T @ (D @ L)
    return _losses_from(L, L.mean(0, keepdim=True) + key, L - key, train_idx, excluded_rows=torch.arange(len(L)))


def _losses_no_mean(logits, key_freqs, train_idx):
    D, L = _directions(logits.shape[-1], key_freqs), logits.double()
    key = D.T @ (D @ L)
    return _losses_from(L, key, L - key, train_idx)


def _losses_unnormalised(logits, key_freqs, train_idx):
    D, L = _directions(logits.shape[-1], key_freqs, normalise=False), logits.double()
    key = D.T @ (D @ L)
    return _losses_from(L, L.mean(0, keepdim=True) + key, L - key, train_idx)


def _losses_cos_only(logits, key_freqs, train_idx):
    D, L = _directions(logits.shape[-1], key_freqs)[0::2], logits.double()
    key = D.T @ (D @ L)
    return _losses_from(L, L.mean(0, keepdim=True) + key, L - key, train_idx)


def _losses_swapped(logits, key_freqs, train_idx):
    restricted, excluded = progress_losses(logits, key_freqs, train_idx)
    return excluded, restricted


def _planted_logits(p: int, key_freqs, seed: int) -> torch.Tensor:
    """(p*p, p) logits: cos(w(a + b - c)) at the key frequencies, a per-answer offset, and noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(p, dtype=torch.float64)
    a, b = x.repeat_interleave(p), x.repeat(p)
    logits = 0.5 * torch.randn(p * p, p, generator=g, dtype=torch.float64) + torch.randn(p, generator=g)
    for k in key_freqs:
        logits += 3.0 * torch.cos(2 * math.pi * k * (a[:, None] + b[:, None] - x[None, :]) / p)
    return logits.float()


@exercise_check(
    reference=progress_losses,
    wrong_answers={
        "Your excluded loss is measured on every pair; it is measured on the training rows only.": _losses_excluded_on_all,
        (
            "Your restricted logits lack each answer's mean over the inputs: the restricted logits keep the "
            "constant component as well as the key-frequency ones."
        ): _losses_no_mean,
        (
            "Your directions are not unit length, so the 'projection' scales the logits: normalise each "
            "cos / sin direction before projecting."
        ): _losses_unnormalised,
        "You projected on cos(w(a + b)) only; each key frequency has a sin(w(a + b)) direction too.": _losses_cos_only,
        "Your two losses come back swapped: return (restricted, excluded).": _losses_swapped,
    },
)
def check_progress_losses(fn) -> None:
    """`progress_losses(logits, key_freqs, train_idx)` must return (restricted loss, excluded loss), 0-d tensors."""
    why = "Return two 0-d tensors (restricted, excluded): the progress cell plots them as numbers."
    g = torch.Generator().manual_seed(13)
    verify(
        fn,
        _planted_logits(13, [2, 5], seed=1),
        [2, 5],
        torch.randperm(169, generator=g)[:60],
        what="logits (p = 13) built from frequencies 2 and 5, key frequencies [2, 5], 60 training rows",
        why=why,
    )
    verify(
        fn,
        _planted_logits(7, [1, 3], seed=2),
        [3],
        torch.randperm(49, generator=g)[:20],
        what="logits (p = 7) built from frequencies 1 and 3, key frequency [3] only, 20 training rows",
        why=why,
    )
