"""The machinery behind every exercise check: run in isolation, compare, diagnose, register.

A check hands the learner's function a few varied cases through `verify(fn, *args, what=...)`.
For each case `verify`:

1. computes the reference answer first, on its own copy of the inputs;
2. calls the learner's function on another copy, and afterwards checks that it left no hook on
   any model it was given, restored the attention implementation, did not change a model's
   parameters or buffers (a changed model is restored, or rebuilt by `digsite.fixtures`) and
   did not change any input in place (it names the input);
3. compares the result with the reference (`assert_close`: type, shape, dtype, then values);
4. when the answer is wrong, runs every registered wrong answer on the same inputs and, if the
   learner's result matches one, names that misconception in the verdict.

Every check is registered with `exercise_check(reference=..., wrong_answers={sentence: fn})`:
each sentence is shown to a learner whose answer behaves like `fn`, so it names the mistake
and nudges toward the fix without giving the solution. `tests/test_checks.py` proves each
check accepts its reference, rejects the stub, and names every wrong answer in its verdict.
A check registered without wrong answers is refused at import time.
"""

from __future__ import annotations

import copy
import inspect
import math
import reprlib
import sys
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..fixtures import forget, seeded_gpt2
from ..notebook import keeping_going

__all__ = [
    "REGISTRY",
    "RESULTS",
    "Check",
    "CheckFailed",
    "assert_close",
    "exercise_check",
    "run_learner",
    "seeded_gpt2",
    "verify",
]


class CheckFailed(AssertionError):
    """A learner's answer did not match; the message is the verdict.

    `kind` says what went wrong ("values", "type", "shape", "dtype", "hooks", "model",
    "in-place", "raised", "stub"); `where` names the input or model concerned, if any.
    In Jupyter the verdict is shown alone, without a traceback through this package.
    """

    def __init__(self, message: str, kind: str = "values", where: str = ""):
        super().__init__(message)
        self.kind, self.where = kind, where

    def _render_traceback_(self) -> list[str]:
        return ["\u274c " + str(self)]


@dataclass
class Check:
    """One exercise check: calling it with `fn` raises CheckFailed unless `fn` is right.

    `cases` is how many cases the latest run handed to `verify` (the test suite reads it).
    """

    name: str
    run: Callable[[Callable], None]
    reference: Callable
    wrong_answers: dict[str, Callable] = field(default_factory=dict)
    cases: int = 0

    def __call__(self, fn: Callable) -> None:
        token = _ACTIVE.set(_Run(self, fn))
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
            print(
                f"\u274c {self.name}: {failed}\n(keep_going is on: the notebook carries on"
                + (f"; until you re-run your cell, `{name}` is the course's solution)" if lent else ")"),
                file=sys.stderr,
            )
            return
        finally:
            self.cases = _ACTIVE.get().cases
            _ACTIVE.reset(token)
        RESULTS[self.name] = True
        print(f"\u2705 {self.name}: all checks passed.")


@dataclass
class _Run:
    """The check now running: what `verify` needs to find the reference and the wrong answers."""

    check: Check
    fn: Callable
    cases: int = 0


_ACTIVE: ContextVar[_Run | None] = ContextVar("digsite_active_check", default=None)


REGISTRY: dict[str, Check] = {}
#: The latest verdict of every check run in this process (for `digsite.progress.summary`).
RESULTS: dict[str, bool] = {}


def exercise_check(reference: Callable, wrong_answers: dict[str, Callable]) -> Callable[[Callable], Check]:
    """Register a check function, with the reference it must accept and the wrong answers it must reject.

    `wrong_answers` maps a sentence a learner understands ("Your scores read the main diagonal:
    attention to the current token. The previous token is one step to the left.") to a plausible
    wrong implementation; the sentence is shown when a learner's answer behaves like it. At least
    one is required.
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
        raise CheckFailed(
            f"`{name}` is not implemented yet: replace the `raise NotImplementedError` with your code.", kind="stub"
        ) from None
    except CheckFailed:
        raise
    except Exception as err:  # the learner's bug: report it plainly
        raise CheckFailed(f"`{name}` raised {type(err).__name__}: {_short(str(err), 300)}", kind="raised") from err


# --- describing values -------------------------------------------------------------------------

_REPR = reprlib.Repr()
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 6
_REPR.maxstring = _REPR.maxother = 80


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(x: Any) -> str:
    """A short summary of any value: shapes for tensors, lengths and first items for containers."""
    if isinstance(x, torch.Tensor):
        if x.numel() == 1:
            return f"a tensor holding {x.item():.6g} (shape {tuple(x.shape)})"
        return f"a tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
    if isinstance(x, (list, tuple)):
        first = f", the first is {_describe(x[0])}" if x else ""
        return f"a {type(x).__name__} of {len(x)} item{'s' * (len(x) != 1)}{first}"
    if isinstance(x, dict):
        return f"a dict with {len(x)} keys {_REPR.repr(list(x))}"
    if isinstance(x, (bool, int, float)) or x is None:
        return f"{type(x).__name__} {x!r}"
    return f"{type(x).__name__} {_REPR.repr(x)}"


def assert_close(got: Any, expected: Any, what: str = "the result", atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """Compare a learner's value with the expected one; raise CheckFailed saying where they differ.

    Tensors: type, shape, then dtype kind (float/int/bool), then values (first differing
    index, both values, the largest error). Numbers, sequences and dicts recurse.
    Long values are summarised, never dumped.
    """
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"{what}: expected a tensor, got {_describe(got)}.", kind="type")
        if tuple(got.shape) != tuple(expected.shape):
            raise CheckFailed(
                f"{what}: wrong shape. Expected {tuple(expected.shape)}, got {tuple(got.shape)}.", kind="shape"
            )
        if got.dtype.is_floating_point != expected.dtype.is_floating_point or (got.dtype == torch.bool) != (
            expected.dtype == torch.bool
        ):
            raise CheckFailed(f"{what}: wrong dtype. Expected {expected.dtype}, got {got.dtype}.", kind="dtype")
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
            max_err = (g.double() - e.double())[finite].abs().max().item() if finite.any() else float("nan")
            raise CheckFailed(
                f"{what}: values differ at {int(bad.sum())} of {bad.numel()} entries. "
                f"First at index {list(idx)}: expected {e[idx].item():.6g}, got {g[idx].item():.6g}. "
                f"Largest difference: {max_err:.3g}."
            )
        return
    if isinstance(expected, float) or (
        isinstance(expected, int) and not isinstance(expected, bool) and isinstance(got, float)
    ):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise CheckFailed(f"{what}: expected a number, got {_describe(got)}.", kind="type")
        if not math.isclose(got, expected, abs_tol=atol, rel_tol=rtol):
            raise CheckFailed(f"{what}: expected {expected:.6g}, got {got:.6g}.")
        return
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            raise CheckFailed(f"{what}: expected a {type(expected).__name__}, got {_describe(got)}.", kind="type")
        plain = not any(
            isinstance(e, (torch.Tensor, float, list, tuple, dict)) and not hasattr(e, "_fields") for e in expected
        )
        if plain and list(got) != list(expected):  # ids, names, nodes: show both, summarised
            raise CheckFailed(f"{what}: expected {_REPR.repr(list(expected))}, got {_REPR.repr(list(got))}.")
        if len(got) != len(expected):
            raise CheckFailed(f"{what}: expected {len(expected)} items, got {len(got)}.", kind="shape")
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_close(g, e, f"{what}[{i}]", atol, rtol)
        return
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            raise CheckFailed(
                f"{what}: expected a dict with keys {_REPR.repr(sorted(expected))}, got {_describe(got)}.", kind="type"
            )
        for k in expected:
            assert_close(got[k], expected[k], f"{what}[{k!r}]", atol, rtol)
        return
    if got != expected:
        raise CheckFailed(f"{what}: expected {_REPR.repr(expected)}, got {_REPR.repr(got)}.")


# --- isolation: copies in, nothing changed out --------------------------------------------------

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _shared_in(x: Any, found: dict[int, Any], depth: int = 0) -> None:
    """Record in `found` what the learner's call shares with the check instead of copying.

    Models (nn.Module), hooked models (objects holding one as `.model`) and tokenizers are shared:
    a model is verified and restored after the call instead. Containers and plain objects
    (caches, lists, dicts) are walked and copied.
    """
    if depth > 4 or x is None or isinstance(x, (torch.Tensor, str, int, float, bool)) or id(x) in found:
        return
    if isinstance(x, nn.Module) or "Tokenizer" in type(x).__name__:
        found[id(x)] = x
        return
    if isinstance(getattr(x, "model", None), nn.Module) and hasattr(x, "__dict__"):  # a HookedModel
        found[id(x)] = x
        _shared_in(x.model, found, depth + 1)
        return
    if isinstance(x, dict):
        items = list(x.values())
    elif isinstance(x, (list, tuple, set)):
        items = list(x)
    elif hasattr(x, "__dict__") and not callable(x):
        items = list(vars(x).values())
    else:
        return
    for item in items:
        _shared_in(item, found, depth + 1)


def _copy(x: Any, shared: dict[int, Any], memo: dict[int, Any] | None = None) -> Any:
    """A deep copy of x that shares (never copies) the models and tokenizers in `shared`.

    Tensors are copied detached (a leaf keeps its requires_grad); containers and plain objects
    (caches, dataclasses) are copied member by member.
    """
    memo = {} if memo is None else memo
    if id(x) in shared:
        return x
    if id(x) in memo:
        return memo[id(x)]
    if isinstance(x, torch.Tensor):
        out = x.detach().clone().requires_grad_(x.requires_grad and x.is_leaf and x.is_floating_point())
    elif isinstance(x, (list, tuple)):
        items = [_copy(item, shared, memo) for item in x]
        out = type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
    elif isinstance(x, dict):
        out = type(x)((k, _copy(v, shared, memo)) for k, v in x.items())
    elif isinstance(x, (str, int, float, bool, type(None))) or callable(x) or not hasattr(x, "__dict__"):
        out = x
    else:
        out = copy.copy(x)
        memo[id(x)] = out
        for k, v in vars(x).items():
            object.__setattr__(out, k, _copy(v, shared, memo))
    memo[id(x)] = out
    return out


def _differs(before: Any, after: Any, path: str, depth: int = 0) -> str | None:
    """The path of the first place where `after` differs from `before` (None if equal)."""
    if depth > 6 or isinstance(before, nn.Module) or callable(before) and not isinstance(before, torch.Tensor):
        return None
    if isinstance(before, torch.Tensor):
        if not isinstance(after, torch.Tensor) or before.shape != after.shape or before.dtype != after.dtype:
            return path
        same = (before == after) | before.isnan() & after.isnan() if before.is_floating_point() else before == after
        return None if bool(same.all()) else path
    if isinstance(before, (list, tuple)):
        if type(after) is not type(before) or len(after) != len(before):
            return path
        return next(
            (d for i, (b, a) in enumerate(zip(before, after)) if (d := _differs(b, a, f"{path}[{i}]", depth + 1))), None
        )
    if isinstance(before, dict):
        if not isinstance(after, dict) or list(before) != list(after):
            return path
        return next((d for k in before if (d := _differs(before[k], after[k], f"{path}[{k!r}]", depth + 1))), None)
    if isinstance(before, (str, int, float, bool, type(None))):
        return (
            None
            if before == after or (isinstance(before, float) and math.isnan(before) and math.isnan(after))
            else path
        )
    if hasattr(before, "__dict__"):
        return _differs(vars(before), vars(after), path, depth + 1) if hasattr(after, "__dict__") else path
    return None


#: Each model's parameters and buffers as first seen by a check (the models are shared and never change).
_PRISTINE: weakref.WeakKeyDictionary[nn.Module, dict[str, torch.Tensor]] = weakref.WeakKeyDictionary()


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach() for n, t in (*module.named_parameters(), *module.named_buffers())}


@dataclass
class _ModelState:
    """What a model looked like before the learner's call: mode, hooks, attention implementation.

    Its weights are compared with the copy taken the first time any check saw the model.
    """

    module: nn.Module
    training: bool
    hooks: dict[tuple[int, str], set[int]]
    attn: Any

    @classmethod
    def of(cls, module: nn.Module) -> _ModelState:
        if module not in _PRISTINE:
            _PRISTINE[module] = {n: t.clone() for n, t in _tensors(module).items()}
        hooks = {(id(m), d): set(h) for m in module.modules() for d in _HOOK_DICTS if (h := getattr(m, d))}
        config = getattr(module, "config", None)
        return cls(module, module.training, hooks, getattr(config, "_attn_implementation", None))

    def hooks_left(self) -> int:
        """Remove and count the hooks added since the snapshot (not transformers' own output-capturing hooks)."""
        left = 0
        for m in self.module.modules():
            for d in _HOOK_DICTS:
                hooks = getattr(m, d)
                for key in set(hooks) - self.hooks.get((id(m), d), set()):
                    if getattr(hooks[key], "__module__", "").startswith("transformers."):
                        continue
                    del hooks[key]
                    left += 1
        return left

    def attn_changed(self) -> bool:
        """Restore the attention implementation; True if it had been left changed."""
        config = getattr(self.module, "config", None)
        if config is None or config._attn_implementation == self.attn:
            return False
        config._attn_implementation = self.attn
        return True

    def changed(self) -> str | None:
        """The first parameter or buffer that changed (restoring all of them), or None."""
        pristine, now = _PRISTINE[self.module], _tensors(self.module)
        mode = self.module.training != self.training
        self.module.train(self.training)
        if list(now) != list(pristine) or any(
            now[n].shape != t.shape or now[n].dtype != t.dtype for n, t in pristine.items()
        ):
            forget(self.module)
            del _PRISTINE[self.module]
            return "its structure (modules or parameters were replaced)"
        floats = [n for n, t in pristine.items() if t.is_floating_point()]
        diffs = torch._foreach_norm(torch._foreach_sub([now[n] for n in floats], [pristine[n] for n in floats]))
        moved = (torch.stack(diffs) != 0).tolist() if floats else []  # nan counts as changed
        bad = [n for n, m in zip(floats, moved) if m]
        bad += [n for n, t in pristine.items() if not t.is_floating_point() and not torch.equal(now[n], t)]
        with torch.no_grad():
            for n in bad:
                now[n].copy_(pristine[n])
        if bad:
            return f"`{bad[0]}`" + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
        return "its training mode (call nothing like .train() on a shared model)" if mode else None


@dataclass
class _Outcome:
    """What one isolated call returned, or the first rule it broke."""

    output: Any = None
    problem: CheckFailed | None = None


def _attempt(fn: Callable, args: tuple, kwargs: dict, names: list[str], use: Callable | None) -> _Outcome:
    """Call fn on copies of the inputs; check it left no hook, model change or in-place edit behind."""
    shared: dict[int, Any] = {}
    _shared_in((args, kwargs), shared)
    states = [_ModelState.of(m) for m in shared.values() if isinstance(m, nn.Module)]
    call_args, call_kwargs = _copy((args, kwargs), shared)
    name = getattr(fn, "__name__", "your function")
    outcome = _Outcome()
    try:
        outcome.output = run_learner(fn, *call_args, **call_kwargs)
        if use is not None:
            outcome.output = run_learner(use, outcome.output)
    except CheckFailed as err:
        outcome.problem = err
    for state in states:
        left, attn, changed = state.hooks_left(), state.attn_changed(), state.changed()
        if outcome.problem is not None and outcome.problem.kind in ("stub", "raised"):
            continue
        if left:
            outcome.problem = CheckFailed(
                f"`{name}` left {left} hook(s) attached to the model: every later forward pass would still run "
                "them (I have removed them). Keep each handle and remove it in a `finally:` block, or use the "
                "model's `with model.hooks(...)` / `run_with_hooks`, which clean up after themselves.",
                kind="hooks",
            )
        elif attn:
            outcome.problem = CheckFailed(
                f"`{name}` left the model's attention implementation changed (I have restored it): "
                "hooks installed by hand were not removed.",
                kind="hooks",
            )
        elif changed:
            outcome.problem = CheckFailed(
                f"`{name}` changed the model it was given: {changed}. Every later cell would use the changed "
                "model, so I have restored it. Change what a forward pass computes with a hook, never the "
                "weights themselves.",
                kind="model",
                where=changed,
            )
    if outcome.problem is None:
        for i, (label, before) in enumerate((*zip(names, args), *kwargs.items())):
            after = call_args[i] if i < len(args) else call_kwargs[label]
            path = _differs(before, after, f"`{label}`")
            if path:
                outcome.problem = CheckFailed(
                    f"`{name}` changed its input {path} in place. The caller still needs it (in the notebook, "
                    "later cells reuse it), so work on a copy (`.clone()`, `list(...)`) or build a new value.",
                    kind="in-place",
                    where=path,
                )
                break
    return outcome


def _same(a: Any, b: Any, atol: float, rtol: float) -> bool:
    """Whether two answers agree (always by `assert_close`: a check's own `compare` may test properties only)."""
    try:
        assert_close(a, b, "", atol=atol, rtol=rtol)
    except CheckFailed:
        return False
    except Exception:  # noqa: BLE001 - a value that cannot even be compared is not the same
        return False
    return True


def verify(
    fn: Callable,
    *args: Any,
    what: str,
    use: Callable | None = None,
    why: str = "",
    compare: Callable = assert_close,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    reference: Callable | None = None,
    **kwargs: Any,
) -> Any:
    """Check the learner's `fn(*args, **kwargs)` against the running check's reference on one case.

    The reference runs first, on its own copy of the inputs; the learner's function runs on
    another copy and must leave no hook, model change or in-place edit behind. `use` turns a
    returned object into comparable values (e.g. apply a returned hook to a tensor); `why` says
    why the type matters, shown if the type is wrong; `compare(got, expected, what, atol=, rtol=)`
    defaults to `assert_close`; `reference` overrides the check's own. On a failure the verdict
    names any registered wrong answer that behaves the same way. Returns the learner's output.
    """
    run = _ACTIVE.get()
    if run is None and reference is None:
        raise RuntimeError("verify() runs inside a registered check (see exercise_check), or needs reference=.")
    ref = reference or run.check.reference
    if run is not None:
        run.cases += 1
    try:
        names = list(inspect.signature(ref).parameters)[: len(args)]
    except (TypeError, ValueError):
        names = []
    names += [f"argument {i + 1}" for i in range(len(names), len(args))]
    expected = _attempt(ref, args, kwargs, names, use)
    if expected.problem is not None:  # a broken reference is the course's bug, not the learner's
        raise RuntimeError(f"The reference failed on {what}: {expected.problem}")
    got = _attempt(fn, args, kwargs, names, use)
    problem = got.problem
    if problem is None:
        try:
            compare(got.output, expected.output, what, atol=atol, rtol=rtol)
        except CheckFailed as err:
            problem = err
            if err.kind == "type" and why:
                problem = CheckFailed(f"{err} {why}", kind="type")
    if problem is None:
        return got.output
    if problem.kind in ("stub", "raised") or run is None:
        raise problem
    named = []
    for sentence, wrong in run.check.wrong_answers.items():
        outcome = _attempt(wrong, args, kwargs, names, use)
        if problem.kind in ("hooks", "model", "in-place"):
            hit = outcome.problem is not None and (outcome.problem.kind, outcome.problem.where) == (
                problem.kind,
                problem.where,
            )
        else:
            hit = outcome.problem is None and _same(outcome.output, got.output, atol, rtol)
        if hit:
            named.append(sentence)
    if not named:
        raise problem
    if len(named) == 1:
        raise CheckFailed(
            f"{problem}\n\nThis looks like a common mistake. {named[0]}", kind=problem.kind, where=problem.where
        )
    listed = "\n".join(f"- {s}" for s in named)
    raise CheckFailed(
        f"{problem}\n\nThis looks like one of these common mistakes:\n{listed}", kind=problem.kind, where=problem.where
    )
