"""Exercise checks, one module per chapter (`ch00`, `ch01`, ...).

Use them from a notebook as `from digsite.checks import ch00; ch00.check_softmax(softmax)`.
Importing this package imports every `chNN` module, which registers its checks in
`REGISTRY`; the test suite walks it to prove each check accepts its solution and
rejects the stub and every registered wrong answer.
"""

import importlib
import pkgutil

from .core import (
    REGISTRY,
    Check,
    CheckFailed,
    assert_close,
    exercise_check,
    run_learner,
    verify,
)

CHAPTER_MODULES = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("ch"))
for _name in CHAPTER_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = [
    "CHAPTER_MODULES",
    "REGISTRY",
    "Check",
    "CheckFailed",
    "assert_close",
    "exercise_check",
    "run_learner",
    "verify",
]
