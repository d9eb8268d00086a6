"""Test-wide settings: the suite, notebooks included, must pass with no network.

HF_HUB_OFFLINE makes any accidental hub download fail at once instead of hanging;
DIGSITE_STRICT_CLAIMS makes a quoted number that drifted fail. nbval's kernels inherit both
because they start after this file is imported.

When the session runs solution notebooks that try a hub model (GPT-2, Pythia, Gemma 2), random
stand-ins are built once and the stand-in switch (`digsite.stand_ins.STAND_IN_ENV`) is set, so
their "Try it on GPT-2" and "Try it on a real model" cells run inside the one nbval pass (their
numbers mean nothing; their calls, shapes and hook names are exercised).

While nbval runs a solution notebook, every kernel message of its cells also goes to the
website builder's `Recorder` (website/build.py), which writes the executed notebook into the
site's cache; the website test is ordered after the notebooks, so its build executes nothing
that nbval already ran (run alone, it executes the notebooks itself).
"""

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

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


# --- one execution of each solution notebook, for nbval and for the website ---------------------


def _website_builder():
    """website/build.py as a module (it is a script, not part of the package)."""
    if "website_build" not in sys.modules:
        spec = importlib.util.spec_from_file_location("website_build", ROOT / "website" / "build.py")
        sys.modules["website_build"] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["website_build"]


def pytest_collection_modifyitems(session, config, items) -> None:
    """The website test after the solution notebooks, so that its build finds them executed."""
    website = [item for item in items if Path(str(item.path)).name == "test_website.py"]
    if website:
        items[:] = [item for item in items if item not in website] + website


def _solution_cell(item) -> bool:
    path = Path(str(item.path))
    return hasattr(item, "cell_num") and path.suffix == ".ipynb" and path.parent.name == "solutions"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Pass every kernel message of a solution notebook's cell to the notebook's `Recorder`."""
    if not _solution_cell(item):
        yield
        return
    notebook, kernel = item.parent, item.parent.kernel
    if getattr(notebook, "digsite_recorder", None) is None:
        notebook.digsite_recorder = _website_builder().Recorder(Path(str(item.path)), kernel.kc)
    recorder = notebook.digsite_recorder
    execute, receive = kernel.execute_cell_input, notebook.get_kernel_message
    sent: list[str] = []

    def execute_cell_input(*args, **kwargs):
        sent.append(execute(*args, **kwargs))
        return sent[-1]

    def get_kernel_message(*args, **kwargs):
        msg = receive(*args, **kwargs)
        if sent and msg["parent_header"].get("msg_id") == sent[0]:
            recorder.message(msg, item.cell_num)
        return msg

    kernel.execute_cell_input, notebook.get_kernel_message = execute_cell_input, get_kernel_message
    try:
        outcome = yield
    finally:
        del kernel.execute_cell_input, notebook.get_kernel_message  # the classes' own methods again
    recorder.finished(item.cell_num, item.cell.source, passed=outcome.excinfo is None and len(sent) == 1)


def pytest_runtest_teardown(item, nextitem) -> None:
    """After a solution notebook's last cell: save it for the website if every cell passed."""
    recorder = getattr(item.parent, "digsite_recorder", None)
    if recorder is not None and (nextitem is None or nextitem.parent is not item.parent):
        recorder.save()
        item.parent.digsite_recorder = None
