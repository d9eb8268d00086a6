"""The progress view tells passed, failed, not-started and did-not-run exercises apart.

It runs on a small synthetic notebook (one kernel start, four check calls), not on a chapter:
what is tested is how the view reads a notebook's outputs, not the chapter itself.
"""

from pathlib import Path

import nbformat
import pytest

from digsite import progress
from digsite.checks import REGISTRY
from digsite.progress import format_rows, main, notebook_progress, summary

RIGHT = "def softmax(x):\n    e = (x - x.max(-1, keepdim=True).values).exp()\n    return e / e.sum(-1, keepdim=True)\n"
CELLS = [
    "import torch\nfrom digsite.checks import ch00",
    RIGHT + "ch00.check_softmax(softmax)",
    'def softmax(x):\n    raise NotImplementedError("Your turn: write this, then run the check below.")\nch00.check_softmax(softmax)',
    "def softmax(x):\n    e = x.exp()\n    return e / e.sum(dim=0, keepdim=True)\nch00.check_softmax(softmax)",
    "raise RuntimeError('an earlier line failed')\nch00.check_softmax(softmax)",
]


@pytest.fixture(scope="module")
def notebook(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "synthetic.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def rows(notebook) -> list[tuple[str, str, str]]:
    return notebook_progress(notebook)


def test_every_status_from_one_run(rows):
    assert [(name, status) for name, status, _ in rows] == [
        ("check_softmax", "passed"),
        ("check_softmax", "not started"),
        ("check_softmax", "failed"),
        ("check_softmax", "did not run"),
    ]
    assert "softmax" in rows[2][2] and "RuntimeError" in rows[3][2]


def test_command_line(notebook, rows, monkeypatch, capsys):
    monkeypatch.setattr(progress, "notebook_progress", lambda path, timeout: rows)  # the run above, not a second one
    assert main([str(notebook)]) == 0
    out = capsys.readouterr().out
    assert str(notebook) in out and "1/4 exercises pass" in out


def test_format_and_session_summary(capsys):
    assert format_rows("t", [("a", "passed", ""), ("b", "failed", "x")]).endswith("1/2 exercises pass")
    REGISTRY["check_softmax"](REGISTRY["check_softmax"].reference)
    summary()
    assert "check_softmax" in capsys.readouterr().out
