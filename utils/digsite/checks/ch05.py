"""Checks for chapter 5, modular arithmetic: the Fourier basis, projections, key frequencies,
neuron activations over (a, b), the cos(w(a + b - c)) logit terms and frequency ablation.

The references live in `digsite.fourier`; the checks build their own small inputs (p = 7 or
13, random seeded tensors, a tiny random-init 1-layer GPT-2), so none needs trained weights.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from .. import fourier
from .core import CheckFailed, assert_close, exercise_check, run_learner, seeded_gpt2

# --- 5.1 the Fourier basis ---------------------------------------------------------------


def _basis_unnormalised(p: int) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float32)
    rows = [torch.ones(p)]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    return torch.stack(rows[:p])


def _basis_sin_cos_swapped(p: int) -> torch.Tensor:
    b = fourier.fourier_basis(p)
    idx = [0] + [i for k in range(1, p // 2 + 1) for i in (2 * k, 2 * k - 1)]
    return b[idx[:p]]


def _basis_off_by_one(p: int) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float32)
    rows = [torch.ones(p)]
    for k in range(0, p // 2):  # frequencies 0 .. (p-3)/2 instead of 1 .. (p-1)/2
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    basis = torch.stack(rows[:p])
    return basis / basis.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _basis_transposed(p: int) -> torch.Tensor:
    return fourier.fourier_basis(p).T


@exercise_check(
    reference=fourier.fourier_basis,
    wrong_answers={
        "an unnormalised basis (raw cos and sin, constant of ones)": _basis_unnormalised,
        "sin and cos swapped": _basis_sin_cos_swapped,
        "frequencies off by one (starting at 0)": _basis_off_by_one,
        "basis vectors as columns instead of rows": _basis_transposed,
    },
)
def check_fourier_basis(fourier_basis) -> None:
    """`fourier_basis(p)` must return the (p, p) orthonormal basis, rows const, cos 1, sin 1, cos 2, ..."""
    for p in (7, 13):
        got = run_learner(fourier_basis, p)
        assert_close(got, fourier.fourier_basis(p), what=f"fourier_basis({p})", atol=1e-5)


# --- 5.2 projecting the embedding ---------------------------------------------------------


def _project_wrong_axis(W: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return W @ basis.T


def _project_inverse(W: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return basis.T @ W


def _project_rebuilt_unnormalised(W: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return _basis_unnormalised(W.shape[0]) @ W


@exercise_check(
    reference=fourier.project_onto_basis,
    wrong_answers={
        "projects the wrong axis (the d_model axis)": _project_wrong_axis,
        "the inverse transform (basis.T @ W)": _project_inverse,
        "an unnormalised basis": _project_rebuilt_unnormalised,
    },
)
def check_project_onto_basis(project_onto_basis) -> None:
    """`project_onto_basis(W, basis)` must express W (p, d) in the Fourier basis along its first axis."""
    gen = torch.Generator().manual_seed(5)
    for p, d in ((13, 13), (13, 24)):
        basis = fourier.fourier_basis(p)
        W = torch.randn(p, d, generator=gen)
        got = run_learner(project_onto_basis, W.clone(), basis.clone())
        assert_close(got, fourier.project_onto_basis(W, basis), what=f"W ({p}, {d}) in the Fourier basis")


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


@exercise_check(
    reference=fourier.key_frequencies,
    wrong_answers={
        "off by one (returns k - 1, the index of the frequency)": _key_freqs_indices,
        "looks only at the cos rows": _key_freqs_cos_only,
        "ranks rows, not frequencies (counts the constant, splits cos/sin)": _key_freqs_rows,
    },
)
def check_key_frequencies(key_frequencies) -> None:
    """`key_frequencies(W_fourier, n)` must return the n frequencies of largest cos+sin norm, sorted."""
    gen = torch.Generator().manual_seed(3)
    p, d = 13, 16
    W = 0.05 * torch.randn(p, d, generator=gen)
    W[0] += 3.0  # a big constant term: not a frequency
    W[fourier.frequency_rows(2)[0]] += 1.0 * torch.randn(d, generator=gen)  # cos 2
    W[fourier.frequency_rows(2)[1]] += 1.0 * torch.randn(d, generator=gen)  # sin 2
    W[fourier.frequency_rows(5)[1]] += 1.6 * torch.randn(d, generator=gen)  # sin 5 only
    W[fourier.frequency_rows(6)[0]] += 0.9 * torch.randn(d, generator=gen)  # cos 6 only, weaker
    W[fourier.frequency_rows(6)[1]] += 0.9 * torch.randn(d, generator=gen)
    for n in (2, 3):
        got = run_learner(key_frequencies, W.clone(), n)
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        expected = fourier.key_frequencies(W, n)
        if not isinstance(got, (list, tuple)) or [int(k) for k in got] != expected:
            raise CheckFailed(
                f"key_frequencies(W_fourier, n={n}) on a test tensor whose strong frequencies are 2, 5 (sin only) "
                f"and 6, plus a large constant: expected {expected}, got {got!r}."
            )


# --- 5.4 neuron activations over (a, b) ----------------------------------------------------


@lru_cache(maxsize=1)
def _tiny_modadd_model(p: int = 7):
    """A random-init 1-layer GPT-2 with the organism's layout (vocab p + 1), wrapped with hooks."""
    return seeded_gpt2(vocab_size=p + 1, n_positions=3, n_embd=16, n_layer=1, n_head=2, n_inner=24,
                       activation_function="relu", bos_token_id=None, eos_token_id=None, pad_token_id=None)


def neuron_acts_reference(model, p: int) -> torch.Tensor:
    """MLP activations (after the ReLU) at the "=" position for every input: (p, p, d_mlp) indexed [a, b]."""
    tokens, _ = fourier.all_pairs(p)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")
    return cache["blocks.0.mlp.hook_post"][:, -1].reshape(p, p, -1)


def _acts_pre_relu(model, p: int) -> torch.Tensor:
    tokens, _ = fourier.all_pairs(p)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_pre")
    return cache["blocks.0.mlp.hook_pre"][:, -1].reshape(p, p, -1)


def _acts_wrong_position(model, p: int) -> torch.Tensor:
    tokens, _ = fourier.all_pairs(p)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")
    return cache["blocks.0.mlp.hook_post"][:, 1].reshape(p, p, -1)


def _acts_b_major(model, p: int) -> torch.Tensor:
    return neuron_acts_reference(model, p).transpose(0, 1)


@exercise_check(
    reference=neuron_acts_reference,
    wrong_answers={
        "before the ReLU (hook_pre)": _acts_pre_relu,
        "at the position of b instead of '='": _acts_wrong_position,
        "indexed [b, a] instead of [a, b]": _acts_b_major,
    },
)
def check_neuron_acts(neuron_acts) -> None:
    """`neuron_acts(model, p)` must return post-ReLU MLP activations at "=" as (p, p, d_mlp), indexed [a, b]."""
    p = 7
    model = _tiny_modadd_model(p)
    got = run_learner(neuron_acts, model, p)
    assert_close(got, neuron_acts_reference(model, p), what="neuron activations of a tiny random model (p = 7)")


# --- 5.5 the 2-D Fourier transform ---------------------------------------------------------


def _fourier_2d_one_axis(acts: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ia,ab...->ib...", basis, acts)


def _fourier_2d_inverse(acts: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ai,bj,ab...->ij...", basis, basis, acts)


def _fourier_2d_swapped(acts: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ia,jb,ba...->ij...", basis, basis, acts)


@exercise_check(
    reference=fourier.fourier_2d,
    wrong_answers={
        "transforms only the a axis": _fourier_2d_one_axis,
        "the inverse transform (basis transposed)": _fourier_2d_inverse,
        "swaps the a and b axes": _fourier_2d_swapped,
    },
)
def check_fourier_2d(fourier_2d) -> None:
    """`fourier_2d(acts, basis)` must transform acts (p, p, n) over both a and b: [i, j] <-> basis_i(a) basis_j(b)."""
    gen = torch.Generator().manual_seed(7)
    p = 13
    basis = fourier.fourier_basis(p)
    acts = torch.randn(p, p, 5, generator=gen)
    got = run_learner(fourier_2d, acts.clone(), basis.clone())
    assert_close(got, fourier.fourier_2d(acts, basis), what="the 2-D Fourier transform of random (13, 13, 5) activations")


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
    return fourier.cos_logit_terms(p, [k + 1 for k in freqs])


def _cos_terms_no_2pi(p: int, freqs) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float64)
    abc = x[:, None, None] + x[None, :, None] - x[None, None, :]
    k = torch.tensor(list(freqs), dtype=torch.float64)[:, None, None, None]
    return torch.cos(k * abc / p).float()


@exercise_check(
    reference=fourier.cos_logit_terms,
    wrong_answers={
        "sin instead of cos": _cos_terms_sin,
        "a + b + c instead of a + b - c": _cos_terms_plus_c,
        "frequency off by one": _cos_terms_off_by_one,
        "forgot the 2 pi": _cos_terms_no_2pi,
    },
)
def check_cos_logit_terms(cos_logit_terms) -> None:
    """`cos_logit_terms(p, freqs)` must return cos(2 pi k (a + b - c) / p), shape (len(freqs), p, p, p)."""
    for p, freqs in ((7, [1, 3]), (13, [2, 5, 6])):
        got = run_learner(cos_logit_terms, p, list(freqs))
        assert_close(got, fourier.cos_logit_terms(p, freqs), what=f"cos_logit_terms({p}, {freqs})", atol=1e-5)


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
    reference=fourier.ablate_frequencies,
    wrong_answers={
        "zeroes only the cos row": _ablate_cos_only,
        "zeroes rows 2k and 2k+1 (off by one)": _ablate_off_by_one_rows,
        "returns the Fourier coefficients, not W": _ablate_not_projected_back,
        "projects back with basis instead of basis.T": _ablate_wrong_inverse,
    },
)
def check_ablate_frequencies(ablate_frequencies) -> None:
    """`ablate_frequencies(W, basis, remove)` must return W (p, d) with frequencies `remove` projected out."""
    gen = torch.Generator().manual_seed(11)
    p, d = 13, 10
    basis = fourier.fourier_basis(p)
    W = torch.randn(p, d, generator=gen)
    for remove in ([3], [1, 4, 6]):
        got = run_learner(ablate_frequencies, W.clone(), basis.clone(), list(remove))
        assert_close(got, fourier.ablate_frequencies(W, basis, remove), what=f"W with frequencies {remove} removed")
