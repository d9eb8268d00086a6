"""The machinery behind every exercise check: compare, report, register.

A check runs the learner's function and the reference on fresh seeded inputs and
prints a kind verdict: a pass, or what was expected, what came back and where
they first differ. Every check is registered with its reference solution and at
least one plausible wrong answer, so `tests/test_checks.py` can prove that each
check accepts the solution, rejects the stub and rejects every wrong answer.
A check registered without wrong answers is refused at import time.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..notebook import keeping_going

if TYPE_CHECKING:
    from ..hooks import HookedModel

__all__ = ["CheckFailed", "Check", "REGISTRY", "RESULTS", "exercise_check", "assert_close", "run_learner", "seeded_gpt2"]


class CheckFailed(AssertionError):
    """A learner's answer did not match; the message is the verdict.

    In Jupyter the verdict is shown alone, without a traceback through this package.
    """

    def _render_traceback_(self) -> list[str]:
        return ["\u274c " + str(self)]


@dataclass
class Check:
    """One exercise check: `run(fn)` raises CheckFailed unless `fn` is right."""

    name: str
    run: Callable[[Callable], None]
    reference: Callable
    wrong_answers: dict[str, Callable] = field(default_factory=dict)

    def __call__(self, fn: Callable) -> None:
        try:
            self.run(fn)
        except CheckFailed as failed:
            RESULTS[self.name] = False
            if not keeping_going():
                raise
            # keep_going: warn, and lend the reference under the learner's name so later cells can run.
            name, caller = getattr(fn, "__name__", ""), sys._getframe(1).f_globals
            lent = caller.get(name) is fn
            if lent:
                caller[name] = self.reference
            print(f"\u274c {self.name}: {failed}\n(keep_going is on: the notebook carries on"
                  + (f"; until you re-run your cell, `{name}` is the course's solution)" if lent else ")"), file=sys.stderr)
            return
        RESULTS[self.name] = True
        print(f"\u2705 {self.name}: all checks passed.")


REGISTRY: dict[str, Check] = {}
#: The latest verdict of every check run in this process (for `digsite.progress.summary`).
RESULTS: dict[str, bool] = {}


def exercise_check(reference: Callable, wrong_answers: dict[str, Callable]) -> Callable[[Callable], Check]:
    """Register a check function, with the reference it must accept and the wrong answers it must reject.

    `wrong_answers` maps a short description ("forgot the causal mask") to a
    plausible wrong implementation; at least one is required.
    """
    if not wrong_answers:
        raise ValueError("An exercise check needs at least one plausible wrong answer to prove it can fail.")

    def register(run: Callable[[Callable], None]) -> Check:
        name = run.__name__
        if name in REGISTRY:
            raise ValueError(f"Two exercise checks are called {name!r}.")
        check = Check(name=name, run=run, reference=reference, wrong_answers=dict(wrong_answers))
        check.__doc__ = run.__doc__
        REGISTRY[name] = check
        return check

    return register


def run_learner(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function, turning a stub or a crash into a clear verdict."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(f"`{name}` is not implemented yet: replace the `raise NotImplementedError` with your code.") from None
    except CheckFailed:
        raise
    except Exception as err:  # the learner's bug: report it plainly
        raise CheckFailed(f"`{name}` raised {type(err).__name__}: {err}") from err


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def assert_close(got: Any, expected: Any, what: str = "the result", atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """Compare a learner's value with the expected one; raise CheckFailed saying where they differ.

    Tensors: shape, then dtype kind (float/int/bool), then values (first differing
    index, both values, the largest error). Numbers, sequences and dicts recurse.
    """
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"{what}: expected a tensor, got {_describe(got)}.")
        if tuple(got.shape) != tuple(expected.shape):
            raise CheckFailed(f"{what}: wrong shape. Expected {tuple(expected.shape)}, got {tuple(got.shape)}.")
        if got.dtype.is_floating_point != expected.dtype.is_floating_point or (got.dtype == torch.bool) != (
            expected.dtype == torch.bool
        ):
            raise CheckFailed(f"{what}: wrong dtype. Expected {expected.dtype}, got {got.dtype}.")
        g, e = got.detach().cpu(), expected.detach().cpu()
        if e.dtype.is_floating_point:
            g, e = g.double(), e.double()
            nan_mismatch = torch.isnan(g) != torch.isnan(e)
            bad = nan_mismatch | (~torch.isclose(g, e, atol=atol, rtol=rtol, equal_nan=True))
        else:
            bad = g != e
        if bad.any():
            idx = tuple(int(i) for i in bad.nonzero()[0])
            finite = ~(torch.isnan(g) | torch.isnan(e)) if e.dtype.is_floating_point else torch.ones_like(bad)
            max_err = (g - e)[finite].abs().max().item() if finite.any() else float("nan")
            raise CheckFailed(
                f"{what}: values differ at {int(bad.sum())} of {bad.numel()} entries. "
                f"First at index {list(idx)}: expected {e[idx].item():.6g}, got {g[idx].item():.6g}. "
                f"Largest difference: {max_err:.3g}."
            )
        return
    if isinstance(expected, float) or (isinstance(expected, int) and not isinstance(expected, bool) and isinstance(got, float)):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)):
            raise CheckFailed(f"{what}: expected a number, got {_describe(got)}.")
        if not math.isclose(got, expected, abs_tol=atol, rel_tol=rtol):
            raise CheckFailed(f"{what}: expected {expected:.6g}, got {got:.6g}.")
        return
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            raise CheckFailed(f"{what}: expected a sequence of length {len(expected)}, got {_describe(got)}.")
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_close(g, e, f"{what}[{i}]", atol, rtol)
        return
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            raise CheckFailed(f"{what}: expected a dict with keys {sorted(expected)}, got {_describe(got)}.")
        for k in expected:
            assert_close(got[k], expected[k], f"{what}[{k!r}]", atol, rtol)
        return
    if got != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {got!r}.")


def seeded_gpt2(tokenizer=None, seed: int = 0, **config: Any) -> HookedModel:
    """A small GPT-2 with random weights drawn from `seed` (eval mode, no dropout), hooked: the checks' test models.

    `config` is passed to `GPT2Config` (sizes, vocabulary, initializer_range, token ids).
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    from ..models import wrap

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **config)).eval()
    return wrap(model, tokenizer)
