"""The project's own files agree with each other: README, CI script, environment.yml, pyproject."""

import ast
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_the_package_and_lists_no_dependencies_of_its_own():
    text = (ROOT / "environment.yml").read_text()
    entries = re.findall(r"^\s*-\s+(\S.*)$", text, flags=re.M)
    assert entries == ["conda-forge", "python=3.11", "pip", "pip:", "-e .[lab]"], entries
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, "3.11".split("."))) >= tuple(map(int, minimum.split(".")))


def test_ci_runs_exactly_the_readme_test_command():
    script = ROOT / ".ci" / "run"
    extracted = subprocess.run(
        ["bash", "-c", re.search(r'TEST_COMMAND="\$\((.*)\)"', script.read_text())[1]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    readme = (ROOT / "README.md").read_text()
    assert extracted == 'pip install -e ".[test]" && pytest'
    assert f"```bash\n{extracted}\n```" in readme


def test_dependencies_are_ranges_not_pins():
    for dep in PYPROJECT["project"]["dependencies"]:
        assert "==" not in dep, f"{dep}: keep dependencies as ranges so users' installs do not rot"


def test_every_chapter_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for src in sorted(ROOT.glob("course/[0-9][0-9]_*.py")):
        assert f"chapters/{src.stem}.ipynb" in readme, f"README's chapter table lacks {src.stem}"


def test_no_module_defines_a_top_level_name_twice():
    """A second `def f` silently replaces the first for every caller (a check once lost a case that way)."""
    twice = []
    for path in sorted((ROOT / "utils" / "digsite").rglob("*.py")):
        seen: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name in seen:
                    twice.append(f"{path.relative_to(ROOT)}: {node.name}")
                seen.add(node.name)
    assert not twice, twice
