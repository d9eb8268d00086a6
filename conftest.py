"""Test-wide settings: the suite, notebooks included, must pass with no network.

HF_HUB_OFFLINE makes any accidental hub download fail at once instead of hanging;
DIGSITE_STRICT_CLAIMS makes a quoted number that drifted fail. nbval's kernels inherit both
because they start after this file is imported.

When the session runs solution notebooks that try a hub model (GPT-2, Pythia, Gemma 2), random
stand-ins are built once and the stand-in switch (`digsite.stand_ins.STAND_IN_ENV`) is set, so
their "Try it on GPT-2" and "Try it on a real model" cells run inside the one nbval pass (their
numbers mean nothing; their calls, shapes and hook names are exercised).
"""

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every number the prose quotes must hold when the solution notebooks run (digsite.claims).
os.environ.setdefault("DIGSITE_STRICT_CLAIMS", "1")

_STAND_INS: list[str] = []


def _tries_hub_model(path: Path) -> bool:
    if path.suffix != ".ipynb" or path.parent.name != "solutions":
        return False
    from digsite.stand_ins import STANDS_IN_FOR

    text = path.read_text()
    return any(f'\\"{name}\\"' in text for name in STANDS_IN_FOR)


def pytest_collection_finish(session) -> None:
    """Build the stand-ins (a few seconds) only if a collected notebook will ask for one."""
    if not any(_tries_hub_model(Path(str(item.path))) for item in session.items):
        return
    from digsite.stand_ins import STAND_IN_ENV, build_stand_ins

    root = tempfile.mkdtemp(prefix="digsite-stand-ins-")
    _STAND_INS.append(root)
    build_stand_ins(root)
    os.environ[STAND_IN_ENV] = root


def pytest_unconfigure(config) -> None:
    for root in _STAND_INS:
        shutil.rmtree(root, ignore_errors=True)
