"""Generate the exercise and solution notebooks from one source per chapter.

Each chapter is written once, as `course/NN_name.py` in the "percent" format
(`# %%` starts a code cell, `# %% [markdown]` a markdown cell whose lines start
with `# `). Code between `# BEGIN SOLUTION` and `# END SOLUTION` is kept in
`solutions/NN_name.ipynb` and replaced in `chapters/NN_name.ipynb` by a stub
that raises NotImplementedError. Both notebooks get the same header: an
"Open in Colab" badge and a setup cell that installs the course in Colab only.
The repository's address lives in one place: `[project.urls]` in pyproject.toml.

Numbers the prose quotes about a result are *claims*, written once in the markdown as
`{{claim:NAME=VALUE}}` (rendered as VALUE). VALUE is a number as the prose shows it
("0.91", "9×", "41%"), optionally with an explicit tolerance ("0.91±0.02", shown as
"0.91"), or a range ("5–12", with an en dash). The build collects every claim into
`utils/digsite/claims.json`; a solution cell measures it with
`digsite.claims.claim("NAME", value)`, which fails under the test suite when the
measured value no longer rounds to what the prose says (see `digsite.claims`).

Each chapter's exercise solutions are also written, once more generated, as an importable
module `utils/digsite/solutions/chNN.py`: every top-level function of a code cell that holds
a solution, with the chapter's imports it uses. The checks import their references from it,
so each taught answer is written once, in the chapter source. An exercise function may use
only its arguments, imports, the package and the chapter's other exercise functions; the
build fails naming any other notebook variable it reads.

    python course/build.py            # write chapters/, solutions/ and the generated modules
    python course/build.py --check    # exit 1 if any committed notebook is stale
"""

from __future__ import annotations

import argparse
import ast
import builtins
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "course"
FIX_COMMAND = "python course/build.py"

STUB = 'raise NotImplementedError("Your turn: write this, then run the check below.")'
CELL_MARKER = re.compile(r"^# %%(?P<kind> \[markdown\])?\s*$")
CLAIM = re.compile(r"\{\{claim:(?P<name>[A-Za-z0-9_.]+)=(?P<spec>[^}]+)\}\}")
NUMBER = re.compile(r"[-+\u2212]?\d[\d,]*(?:\.\d+)?")
CLAIMS_FILE = "utils/digsite/claims.json"
SOLUTIONS_DIR = "utils/digsite/solutions"


def repository() -> str:
    """The course's GitHub "owner/name", read from pyproject.toml's [project.urls]."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    return urls["Repository"].removeprefix("https://github.com/").rstrip("/")


def parse(source: str) -> list[tuple[str, str, int]]:
    """Split a percent-format source into (cell_type, text, line of the text's first line) triples."""
    cells: list[tuple[str, list[str], int]] = []
    for number, line in enumerate(source.splitlines(), start=1):
        marker = CELL_MARKER.match(line)
        if marker:
            cells.append(("markdown" if marker["kind"] else "code", [], number + 1))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"Text before the first cell marker: {line!r}")
    parsed = []
    for kind, lines, first in cells:
        if kind == "markdown":
            bad = [ln for ln in lines if ln and not ln.startswith("#")]
            if bad:
                raise ValueError(f"Markdown lines must start with '#': {bad[0]!r}")
            lines = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in lines]
        while lines and not lines[0].strip("\n"):
            lines, first = lines[1:], first + 1
        parsed.append((kind, "\n".join(lines).strip("\n"), first))
    return parsed


def _number(text: str) -> float:
    """A number as prose writes it: thousands commas, and a typographic minus (U+2212)."""
    return float(text.replace(",", "").replace("\u2212", "-"))


def claim_bounds(spec: str) -> tuple[str, float, float]:
    """The text a claim shows and the interval a measurement must fall in.

    "0.91" -> ("0.91", 0.905, 0.915): the measured value must round to the quoted one.
    "0.91±0.02" -> ("0.91", 0.89, 0.93); "40±10%" -> ("40", 36, 44), a relative tolerance
    (but "41%±3%" is 38% to 44%: the quote is itself a percentage). "5–12" -> ("5–12", 5, 12).
    A typographic minus (−0.35) and thousands commas (1,234) are read as numbers.
    """
    shown, _, tol = spec.partition("±")
    numbers = [_number(n) for n in NUMBER.findall(shown)]
    if "–" in shown and len(numbers) == 2:
        return shown, min(numbers), max(numbers)
    if len(numbers) != 1:
        raise ValueError(f"A claim's value must be one number or a range a–b (en dash), got {spec!r}.")
    if tol:
        tol = tol.strip()
        relative = tol.endswith("%") and "%" not in shown
        half = _number(tol.rstrip("%")) * (abs(numbers[0]) / 100 if relative else 1)
    else:
        digits = NUMBER.findall(shown)[0]
        decimals = len(digits.partition(".")[2])
        half = 0.5 * 10.0**-decimals
    return shown, numbers[0] - half * (1 + 1e-9), numbers[0] + half * (1 + 1e-9)


def render_claims(text: str, source: str, first_line: int, found: dict[str, dict], prefix: str = "") -> str:
    """Replace every `{{claim:NAME=VALUE}}` by the value's text; record each claim in `found`.

    Every NAME must start with `prefix` (a chapter's claims are named `chNN.…`) and be quoted once.
    """

    def one(match: re.Match) -> str:
        name = match["name"]
        if not name.startswith(prefix):
            raise ValueError(f"{source}: the claim {name!r} must be named {prefix}… (its chapter's number).")
        if name in found:
            raise ValueError(f"{source}: the claim {name!r} is quoted twice (first at {found[name]['where']}).")
        shown, low, high = claim_bounds(match["spec"])
        line = first_line + text[: match.start()].count("\n")
        found[name] = {"quoted": shown, "low": low, "high": high, "where": f"{source}:{line}"}
        return shown

    return CLAIM.sub(one, text)


def strip_solutions(code: str) -> str:
    """Replace every BEGIN/END SOLUTION region by a NotImplementedError stub."""
    out, depth, indent = [], 0, ""
    for line in code.splitlines():
        stripped = line.strip()
        if stripped == "# BEGIN SOLUTION":
            if depth:
                raise ValueError("Nested BEGIN SOLUTION markers.")
            depth, indent = 1, line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB)
        elif stripped == "# END SOLUTION":
            if not depth:
                raise ValueError("END SOLUTION without BEGIN SOLUTION.")
            depth = 0
        elif not depth:
            out.append(line)
    if depth:
        raise ValueError("BEGIN SOLUTION without END SOLUTION.")
    return "\n".join(out)


def drop_markers(code: str) -> str:
    """The solution keeps its code and loses the markers."""
    return "\n".join(ln for ln in code.splitlines() if ln.strip() not in ("# BEGIN SOLUTION", "# END SOLUTION"))


def header(stem: str, folder: str) -> list[tuple[str, str]]:
    """What opens every notebook: the Colab and Binder badges, then the setup cell.

    Exercise notebooks also say what Run All does there and how to run past an unfinished
    exercise (`keep_going`, switched in their setup cell, off by default).
    """
    repo = repository()
    path = f"{folder}/{stem}.ipynb"
    badges = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{repo}/blob/main/{path}) "
        f"[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/{repo}/main?urlpath=lab/tree/{path})"
    )
    exercises = folder == "chapters"
    if exercises:
        badges += "\n\n" + RUNNING_AN_EXERCISE_NOTEBOOK.format(solution=f"solutions/{stem}.ipynb")
    setup = [
        "# Setup. In Colab this installs the course package (about a minute); on your own machine it installs nothing.",
        "import sys",
        "",
        'if "google.colab" in sys.modules:',
        "    import subprocess",
        "",
        "    # pip's messages appear as they come. Colab's own torch, transformers and ipywidgets stay as they are.",
        f'    pip = [sys.executable, "-m", "pip", "install", "digsite @ git+https://github.com/{repo}"]',
        "    with subprocess.Popen(pip, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as install:",
        "        for line in install.stdout:",
        '            print(line, end="")',
        "    if install.returncode:",
        '        raise RuntimeError("Installing the course failed: pip says why above.")',
        "    import ipywidgets",
        "",
        '    if int(ipywidgets.__version__.split(".")[0]) >= 8:  # Colab draws ipywidgets 8 only with its own widget manager',
        "        from google.colab import output",
        "",
        "        output.enable_custom_widget_manager()",
    ]
    if exercises:
        setup += [
            "",
            "from digsite.notebook import keep_going",
            "",
            "keep_going(False)  # True: Run All carries on past an unfinished exercise (see above)",
        ]
    return [("markdown", badges), ("code", "\n".join(setup))]


RUNNING_AN_EXERCISE_NOTEBOOK = """\
**Running this notebook.** Run the cells in order (Shift+Enter). Each exercise is a function for \
you to write; the check right after it answers ✅, or ❌ with what is wrong. *Run All* stops at \
the first exercise you have not finished, on its ❌: that is expected. To look at the whole \
notebook first (its figures and explorers), change `keep_going(False)` to `keep_going(True)` in the \
setup cell below and Run All again: a failing check then prints its ❌ and the run carries on, with \
the course's solution standing in for your unfinished function (it says so) until you re-run your \
own cell. The figures you then see come from the solution, not from your code. The completed \
notebook is `{solution}`."""


def notebook(cells: list[tuple[str, str]], stem: str) -> str:
    """Serialise cells as an output-free nbformat 4.5 notebook with stable cell ids."""
    nb_cells = []
    for i, (kind, text) in enumerate(cells):
        cell_id = hashlib.sha1(f"{stem}:{i}:{text}".encode()).hexdigest()[:12]
        cell = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": text.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        nb_cells.append(cell)
    nb = {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def build(source: Path, claims: dict[str, dict] | None = None) -> dict[str, str]:
    """Map each generated notebook's path (relative to the repo) to its text; collect claims into `claims`."""
    found = {} if claims is None else claims
    rel = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    cells = [
        (kind, render_claims(text, str(rel), first, found, f"ch{source.stem[:2]}.") if kind == "markdown" else text)
        for kind, text, first in parse(source.read_text())
    ]
    stem = source.stem
    exercise = [(k, strip_solutions(t) if k == "code" else t) for k, t in cells]
    solution = [(k, drop_markers(t) if k == "code" else t) for k, t in cells]
    return {
        f"chapters/{stem}.ipynb": notebook(header(stem, "chapters") + exercise, stem),
        f"solutions/{stem}.ipynb": notebook(header(stem, "solutions") + solution, stem),
    }


def generate() -> dict[str, str]:
    """Every generated file (both notebooks of each chapter, the claims manifest, the solution modules) and its text."""
    claims: dict[str, dict] = {}
    expected = {path: text for src in sources() for path, text in build(src, claims).items()}
    expected[CLAIMS_FILE] = json.dumps(dict(sorted(claims.items())), indent=1, ensure_ascii=False) + "\n"
    for src in sources():
        cells = [(kind, text) for kind, text, _ in parse(src.read_text())]
        expected[f"{SOLUTIONS_DIR}/ch{src.stem[:2]}.py"] = solutions_module(src, cells)
    expected[f"{SOLUTIONS_DIR}/__init__.py"] = (
        '"""Every chapter\'s exercise solutions as importable modules, generated by course/build.py from course/."""\n'
    )
    return expected


def _names_used(node: ast.AST) -> set[str]:
    """Every name a function reads that it does not bind itself (a small, conservative scope analysis)."""
    bound = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            bound.add(sub.id)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            bound.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in sub.names)
    loads = {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)}
    return loads - bound


def sorted_imports(lines: list[str]) -> list[str]:
    """One-name import lines, merged and ordered as isort does: standard library, other packages, digsite."""
    plain: list[set[str]] = [set(), set(), set()]
    froms: list[dict[str, set[str]]] = [{}, {}, {}]
    for line in lines:
        module = line.split()[1]
        top = module.split(".")[0]
        section = 2 if top == "digsite" else 0 if top in sys.stdlib_module_names else 1
        if line.startswith("import "):
            plain[section].add(line)
        else:
            froms[section].setdefault(module, set()).add(line.partition(" import ")[2])

    def by_type(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    out: list[str] = []
    for section in range(3):
        block = sorted(plain[section]) + [
            f"from {module} import {', '.join(sorted(names, key=by_type))}"
            for module, names in sorted(froms[section].items())
        ]
        if block and out:
            out.append("")
        out += block
    return out


def solutions_module(source: Path, cells: list[tuple[str, str]]) -> str:
    """The importable module of a chapter's exercise solutions: its functions and the imports they use."""
    rel = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    imports: dict[str, str] = {}
    functions: list[tuple[str, str, set[str]]] = []
    for kind, text in cells:
        if kind != "code":
            continue
        code = drop_markers(text)
        tree = ast.parse(code)
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("digsite.checks"):
                    continue
                for alias in node.names:
                    bound = (alias.asname or alias.name).split(".")[0]
                    one = (
                        ast.Import([alias])
                        if isinstance(node, ast.Import)
                        else ast.ImportFrom(node.module, [alias], node.level)
                    )
                    imports.setdefault(bound, ast.unparse(one))
        if "# BEGIN SOLUTION" not in text:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                functions.append((node.name, ast.get_source_segment(code, node), _names_used(node)))
    defined = {name for name, _, _ in functions}
    known = defined | set(imports) | set(dir(builtins))
    for name, _, used in functions:
        unknown = sorted(used - known)
        if unknown:
            raise ValueError(
                f"{rel}: the exercise function `{name}` reads the notebook variable(s) {', '.join(unknown)}. "
                "Pass them as arguments or import them from the package, so the solution can be imported."
            )
    needed = set().union(*(used for _, _, used in functions)) if functions else set()
    lines = [
        f'"""The exercise solutions of {rel}, generated by course/build.py: do not edit.',
        "",
        f"Edit the solution in {rel} and run `{FIX_COMMAND}`. The checks in",
        f"digsite.checks.ch{source.stem[:2]} take their references from here.",
        '"""',
        "",
        *sorted_imports([line for bound, line in imports.items() if bound in needed]),
        "",
        "__all__ = [" + ", ".join(f'"{name}"' for name in sorted(defined)) + "]",
    ]
    for _, text, _ in functions:
        lines += ["", "", text]
    return "\n".join(lines) + "\n"


def sources() -> list[Path]:
    """Every chapter source: course/NN_name.py."""
    return sorted(p for p in SOURCE_DIR.glob("[0-9][0-9]_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ from their source")
    parser.add_argument("--root", type=Path, default=ROOT, help="where chapters/ and solutions/ live")
    args = parser.parse_args(argv)
    expected = generate()
    stale = []
    for rel, text in expected.items():
        target = args.root / rel
        if not target.exists() or target.read_text() != text:
            stale.append(rel)
            if not args.check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    extra = sorted(
        str(p.relative_to(args.root))
        for folder in ("chapters", "solutions")
        for p in (args.root / folder).glob("*.ipynb")
        if str(p.relative_to(args.root)) not in expected
    )
    if args.check:
        if stale or extra:
            for rel in stale:
                print(f"stale: {rel} differs from what its source in course/ generates")
            for rel in extra:
                print(f"orphan: {rel} has no source in course/")
            print(f"Fix: edit the source in course/, then run `{FIX_COMMAND}` (never edit the notebooks by hand).")
            return 1
        print(f"{len(expected)} notebooks up to date.")
        return 0
    print(f"wrote {len(stale)} of {len(expected)} notebooks" + (f"; orphans to delete: {extra}" if extra else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
