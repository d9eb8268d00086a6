"""Generate the exercise and solution notebooks from one source per chapter.

Each chapter is written once, as `course/NN_name.py` in the "percent" format
(`# %%` starts a code cell, `# %% [markdown]` a markdown cell whose lines start
with `# `). Code between `# BEGIN SOLUTION` and `# END SOLUTION` is kept in
`solutions/NN_name.ipynb` and replaced in `chapters/NN_name.ipynb` by a stub
that raises NotImplementedError. Both notebooks get the same header: an
"Open in Colab" badge and a setup cell that installs the course in Colab only.
The repository's address lives in one place: `[project.urls]` in pyproject.toml.

    python course/build.py            # write chapters/ and solutions/
    python course/build.py --check    # exit 1 if any committed notebook is stale
"""

from __future__ import annotations

import argparse
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


def repository() -> str:
    """The course's GitHub "owner/name", read from pyproject.toml's [project.urls]."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    return urls["Repository"].removeprefix("https://github.com/").rstrip("/")


def parse(source: str) -> list[tuple[str, str]]:
    """Split a percent-format source into (cell_type, text) pairs."""
    cells: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        marker = CELL_MARKER.match(line)
        if marker:
            cells.append(("markdown" if marker["kind"] else "code", []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"Text before the first cell marker: {line!r}")
    parsed = []
    for kind, lines in cells:
        if kind == "markdown":
            bad = [ln for ln in lines if ln and not ln.startswith("#")]
            if bad:
                raise ValueError(f"Markdown lines must start with '#': {bad[0]!r}")
            lines = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in lines]
        parsed.append((kind, "\n".join(lines).strip("\n")))
    return parsed


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
    """The badge and Colab setup cell that open every notebook."""
    repo = repository()
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{repo}/blob/main/{folder}/{stem}.ipynb)"
    )
    setup = "\n".join(
        [
            "# Setup: in Colab this installs the course package; on your own machine it does nothing.",
            "import sys",
            "",
            'if "google.colab" in sys.modules:',
            "    import subprocess",
            "",
            "    subprocess.run(",
            f'        [sys.executable, "-m", "pip", "install", "-q", "digsite @ git+https://github.com/{repo}"], check=True',
            "    )",
        ]
    )
    return [("markdown", badge), ("code", setup)]


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


def build(source: Path) -> dict[str, str]:
    """Map each generated notebook's path (relative to the repo) to its text."""
    cells = parse(source.read_text())
    stem = source.stem
    exercise = [(k, strip_solutions(t) if k == "code" else t) for k, t in cells]
    solution = [(k, drop_markers(t) if k == "code" else t) for k, t in cells]
    return {
        f"chapters/{stem}.ipynb": notebook(header(stem, "chapters") + exercise, stem),
        f"solutions/{stem}.ipynb": notebook(header(stem, "solutions") + solution, stem),
    }


def sources() -> list[Path]:
    """Every chapter source: course/NN_name.py."""
    return sorted(p for p in SOURCE_DIR.glob("[0-9][0-9]_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ from their source")
    parser.add_argument("--root", type=Path, default=ROOT, help="where chapters/ and solutions/ live")
    args = parser.parse_args(argv)
    expected = {path: text for src in sources() for path, text in build(src).items()}
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
