"""Checks for chapter 5, modular arithmetic: the Fourier basis, projections, key frequencies,
neuron activations over (a, b), the cos(w(a + b - c)) logit terms and frequency ablation.

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
