"""Exercise checks, one module per chapter (`ch00`, `ch01`, ...).

Use them from a notebook as `from digsite.checks import ch00; ch00.check_softmax(softmax)`.
Importing this package registers every chapter's checks in `REGISTRY`, which the
test suite walks to prove each check accepts its solution and rejects wrong answers.
"""

from .core import REGISTRY, Check, CheckFailed, assert_close, exercise_check, run_learner
from . import ch00  # noqa: E402  (registers the chapter's checks)

__all__ = ["REGISTRY", "Check", "CheckFailed", "assert_close", "exercise_check", "run_learner", "ch00"]
