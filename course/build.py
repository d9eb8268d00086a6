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
CLAIM = re.compile(r"\{\{claim:(?P<name>[A-Za-z0-9_.]+)=(?P<spec>[^}]+)\}\}")
NUMBER = re.compile(r"[-+\u2212]?\d[\d,]*(?:\.\d+)?")
CLAIMS_FILE = "utils/digsite/claims.json"


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
    """Every generated file (both notebooks of each chapter, and the claims manifest) and its text."""
    claims: dict[str, dict] = {}
    expected = {path: text for src in sources() for path, text in build(src, claims).items()}
    expected[CLAIMS_FILE] = json.dumps(dict(sorted(claims.items())), indent=1, ensure_ascii=False) + "\n"
    return expected


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
