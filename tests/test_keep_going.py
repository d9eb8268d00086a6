"""keep_going: off by default a failing check stops the notebook; on, it prints its ❌, lends the
reference solution under the learner's function's name, and the run carries on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from digsite.checks.core import RESULTS, Check, CheckFailed
from digsite.notebook import KEEP_GOING_VARIABLE, keep_going, keeping_going

ROOT = Path(__file__).resolve().parent.parent


def _failing_run(fn):
    raise CheckFailed("`fn` is not implemented yet: replace the `raise NotImplementedError` with your code.")


CHECK = Check(name="check_demo", run=_failing_run, reference=lambda: None, wrong_answers={"x": lambda: None})


@pytest.fixture(autouse=True)
def clean_switch(monkeypatch):
    monkeypatch.setenv(KEEP_GOING_VARIABLE, "")
    monkeypatch.delenv(KEEP_GOING_VARIABLE)  # absent, and restored to absent afterwards


def test_off_by_default_a_failing_check_raises():
    assert not keeping_going()
    with pytest.raises(CheckFailed):
        CHECK(lambda: None)
    assert RESULTS["check_demo"] is False


def test_on_a_failing_check_prints_its_verdict_and_lends_the_reference(capsys):
    def fn():
        raise NotImplementedError

    keep_going()
    namespace = {"fn": fn, "CHECK": CHECK}
    exec("CHECK(fn)", namespace)  # noqa: S102 -- as in a notebook cell: the learner's function is a global there
    err = capsys.readouterr().err
    assert err.startswith("\u274c check_demo: `fn` is not implemented yet") and "keep_going is on" in err
    assert "`fn` is the course's solution" in err
    assert namespace["fn"] is CHECK.reference
    assert RESULTS["check_demo"] is False  # still counted as failed (digsite.progress)
    keep_going(False)
    with pytest.raises(CheckFailed):
        CHECK(fn)


def test_a_function_not_bound_under_its_name_is_left_alone(capsys):
    keep_going()
    namespace = {"CHECK": CHECK}
    exec("CHECK(lambda: None)", namespace)  # noqa: S102
    err = capsys.readouterr().err
    assert "keep_going is on" in err and "solution" not in err and set(namespace) == {"CHECK", "__builtins__"}


def test_the_environment_variable_switches_it_for_a_whole_session(monkeypatch):
    monkeypatch.setenv(KEEP_GOING_VARIABLE, "1")
    assert keeping_going()
    CHECK(lambda: None)


def test_every_exercise_notebook_explains_run_all_and_has_the_switch_off():
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        intro, setup = "".join(cells[0]["source"]), "".join(cells[1]["source"])
        assert "*Run All* stops at the first exercise you have not finished" in intro, path.name
        assert "keep_going(False)" in setup, path.name
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        assert "keep_going" not in "".join(json.loads(path.read_text())["cells"][1]["source"]), path.name


def test_run_all_on_chapter_0_with_keep_going_runs_to_the_end(tmp_path):
    """Chapter 0's exercise notebook, untouched, run top to bottom as Run All does (stopping at an error)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    def run_all(switch: bool) -> tuple[int, str]:
        """(index of the cell that stopped the run, or the number of cells; the error)."""
        nb = nbformat.read(ROOT / "chapters" / "00_orientation.ipynb", as_version=4)
        nb.cells[1].source = nb.cells[1].source.replace("keep_going(False)", f"keep_going({switch})")
        client = nbclient.NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}})
        try:
            client.execute(env={**os.environ, "PYTHONPATH": str(ROOT / "utils")})
        except nbclient.exceptions.CellExecutionError as err:
            stopped = next(
                i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))
            )
            return stopped, str(err)
        return len(nb.cells), ""

    cells = nbformat.read(ROOT / "chapters" / "00_orientation.ipynb", as_version=4).cells
    stopped, error = run_all(False)
    assert "check_softmax" in cells[stopped].source and "not implemented yet" in error
    assert run_all(True) == (len(cells), "")
