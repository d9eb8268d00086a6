"""The committed notebooks are exactly what `python course/build.py` generates from course/."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = [sys.executable, str(ROOT / "course" / "build.py")]


def _check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*BUILD, "--check", "--root", str(root)], capture_output=True, text=True)


def test_committed_notebooks_match_their_sources():
    result = _check(ROOT)
    assert result.returncode == 0, result.stdout + "\nRun `python course/build.py` to regenerate."


def _copy_notebooks(tmp_path: Path) -> None:
    for folder in ("chapters", "solutions"):
        shutil.copytree(ROOT / folder, tmp_path / folder)


def test_a_hand_edited_notebook_is_caught(tmp_path):
    _copy_notebooks(tmp_path)
    target = tmp_path / "chapters" / "00_orientation.ipynb"
    nb = json.loads(target.read_text())
    nb["cells"][-1]["source"].append("\nA sentence added by hand.")
    target.write_text(json.dumps(nb, indent=1))
    result = _check(tmp_path)
    assert result.returncode == 1
    assert "stale: chapters/00_orientation.ipynb" in result.stdout
    assert "python course/build.py" in result.stdout


def test_a_notebook_without_source_is_caught(tmp_path):
    _copy_notebooks(tmp_path)
    shutil.copy(tmp_path / "solutions" / "00_orientation.ipynb", tmp_path / "solutions" / "99_extra.ipynb")
    result = _check(tmp_path)
    assert result.returncode == 1 and "orphan: solutions/99_extra.ipynb" in result.stdout


def test_notebooks_are_committed_without_outputs():
    for path in sorted(ROOT.glob("chapters/*.ipynb")) + sorted(ROOT.glob("solutions/*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def test_exercises_are_stubbed_and_solutions_complete():
    for path in sorted(ROOT.glob("course/[0-9][0-9]_*.py")):
        exercise = (ROOT / "chapters" / f"{path.stem}.ipynb").read_text()
        solution = (ROOT / "solutions" / f"{path.stem}.ipynb").read_text()
        n_regions = path.read_text().count("# BEGIN SOLUTION")
        assert exercise.count("raise NotImplementedError") >= n_regions >= 1, path.name
        assert "BEGIN SOLUTION" not in exercise + solution
        assert 'NotImplementedError(\\"Your turn' not in solution
