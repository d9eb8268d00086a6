"""Test-wide settings: the suite, notebooks included, must pass with no network.

HF_HUB_OFFLINE makes any accidental hub download fail at once instead of hanging;
DIGSITE_STRICT_CLAIMS makes a quoted number that drifted fail. nbval's kernels inherit both
because they start after this file is imported.

When the session runs solution notebooks that try GPT-2, a random GPT-2 stand-in is built
once and the stand-in switch (`digsite.stand_ins.STAND_IN_ENV`) is set, so their "Try it on
GPT-2" cells run inside the one nbval pass (their numbers mean nothing; their calls, shapes
and hook names are exercised).
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


def _tries_gpt2(path: Path) -> bool:
    return path.suffix == ".ipynb" and path.parent.name == "solutions" and 'load_model(\\"gpt2\\"' in path.read_text()


def pytest_collection_finish(session) -> None:
    """Build the GPT-2 stand-in (a few seconds) only if a collected notebook will ask for it."""
    if not any(_tries_gpt2(Path(str(item.path))) for item in session.items):
        return
    from digsite.stand_ins import STAND_IN_ENV, build_gpt2_stand_in

    root = tempfile.mkdtemp(prefix="digsite-stand-ins-")
    _STAND_INS.append(root)
    build_gpt2_stand_in(root)
    os.environ[STAND_IN_ENV] = root


def pytest_unconfigure(config) -> None:
    for root in _STAND_INS:
        shutil.rmtree(root, ignore_errors=True)
