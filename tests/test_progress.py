"""The progress view tells passed, failed and not-started exercises apart."""

import json
import shutil
from pathlib import Path

from digsite.checks import REGISTRY
from digsite.progress import format_rows, main, notebook_progress, summary

ROOT = Path(__file__).resolve().parent.parent


def test_stub_solution_and_wrong_answer(tmp_path):
    exercise = ROOT / "chapters" / "00_orientation.ipynb"
    assert notebook_progress(exercise) == [("check_softmax", "not started", "")]
    assert notebook_progress(ROOT / "solutions" / "00_orientation.ipynb") == [("check_softmax", "passed", "")]

    wrong = tmp_path / "wrong.ipynb"
    nb = json.loads((ROOT / "solutions" / "00_orientation.ipynb").read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if "def softmax" in src:
            cell["source"] = src.replace("exps.sum(dim=-1", "exps.sum(dim=0")
    wrong.write_text(json.dumps(nb))
    [(name, status, detail)] = notebook_progress(wrong)
    assert (name, status) == ("check_softmax", "failed") and "softmax" in detail


def test_format_and_session_summary(capsys):
    assert format_rows("t", [("a", "passed", ""), ("b", "failed", "x")]).endswith("1/2 exercises pass")
    REGISTRY["check_softmax"](REGISTRY["check_softmax"].reference)
    summary()
    assert "check_softmax" in capsys.readouterr().out


def test_command_line(tmp_path, capsys):
    shutil.copy(ROOT / "solutions" / "00_orientation.ipynb", tmp_path / "nb.ipynb")
    assert main([str(tmp_path / "nb.ipynb")]) == 0
    assert "1/1 exercises pass" in capsys.readouterr().out
