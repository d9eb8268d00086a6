"""Which exercises of a chapter pass: for a learner, a facilitator, or a workshop room.

From the command line, execute a saved exercise notebook and list its checks:

    python -m digsite.progress chapters/01_hooks.ipynb [more.ipynb ...]

For a workshop hub, one row per learner, from every learner's saved notebooks under a folder
of home directories (read from the outputs they saved: instant, nothing is executed; add
`--execute` to re-run each notebook instead, which is slower and exact):

    python -m digsite.progress --room /srv/digsite/homes [--detail] [--json]

In a notebook, `progress.summary()` lists the checks run so far in this kernel.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .checks.core import RESULTS

CHECK_CALL = re.compile(r"\bch\d\d\.(check_\w+)\(")
ROOM_PATTERN = "chapters/[0-9][0-9]_*.ipynb"
SYMBOL = {"passed": "\u2705", "failed": "\u274c", "not started": "\u2b1c", "did not run": "\u26a0\ufe0f"}


def _cell_text(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}\n" + "\n".join(out.get("traceback", [])))
    return "".join(parts)


def notebook_progress(path: str | Path, timeout: int = 600) -> list[tuple[str, str, str]]:
    """Execute an exercise notebook (errors allowed) and return (check, status, detail) per check call.

    status is "passed", "failed", "not started" (the stub still raises) or "did not run"
    (an earlier error stopped the cell before its check).
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}).execute()
    return _rows(nb.cells)


def _rows(cells: list) -> list[tuple[str, str, str]]:
    """(check, status, detail) for every check call in these cells, from their outputs."""
    rows = []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        text = _cell_text(cell.get("outputs", []))
        for name in CHECK_CALL.findall(cell.source):
            if not text.strip():
                rows.append((name, "not started", ""))
            elif f"{name}: all checks passed" in text:
                rows.append((name, "passed", ""))
            elif "not implemented yet" in text or "NotImplementedError" in text:
                rows.append((name, "not started", ""))
            elif "CheckFailed" in text or "\u274c" in text:
                detail = next((ln for ln in text.splitlines() if "\u274c" in ln or "CheckFailed" in ln), "")
                rows.append((name, "failed", detail.strip()[:160]))
            else:
                detail = next((ln for ln in text.splitlines() if "Error" in ln), "")
                rows.append((name, "did not run", detail.strip()[:160]))
    return rows


def format_rows(title: str, rows: list[tuple[str, str, str]]) -> str:
    """A small text table: one line per check, then a count."""
    lines = [title]
    lines += [
        f"  {SYMBOL[status]} {name:<40} {status}{'  ' + detail if detail else ''}" for name, status, detail in rows
    ]
    done = sum(status == "passed" for _, status, _ in rows)
    lines.append(f"  {done}/{len(rows)} exercises pass")
    return "\n".join(lines)


def summary() -> None:
    """Print the checks run in this kernel so far and their latest verdicts."""
    rows = [(name, "passed" if ok else "failed", "") for name, ok in RESULTS.items()]
    print(format_rows("Checks run in this session:", rows) if rows else "No checks run yet in this session.")


def saved_progress(path: str | Path) -> list[tuple[str, str, str]]:
    """(check, status, detail) per check call, read from the outputs the learner saved; nothing runs.

    A check whose cell has no saved output is "not started".
    """
    import nbformat

    return _rows(nbformat.read(Path(path), as_version=4).cells)


def room_progress(
    homes: str | Path, pattern: str = ROOM_PATTERN, execute: bool = False, timeout: int = 600
) -> dict[str, dict[str, list[tuple[str, str, str]]]]:
    """Every learner's progress: {learner: {chapter stem: rows}}, one learner per folder in `homes`.

    A learner's chapters are the notebooks matching `pattern` inside their folder (by default
    the copies a hub gives each learner, `chapters/NN_name.ipynb`). Saved outputs are read
    unless `execute`, which re-runs every notebook (exact, but minutes for a room).
    """
    homes = Path(homes)
    if not homes.is_dir():
        raise NotADirectoryError(f"{homes} is not a folder of learners' homes (one sub-folder per learner).")
    room: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
    for home in sorted(p for p in homes.iterdir() if p.is_dir() and not p.name.startswith(".")):
        notebooks = sorted(p for p in home.glob(pattern) if ".ipynb_checkpoints" not in p.parts)
        room[home.name] = {}
        for nb in notebooks:
            try:
                rows = notebook_progress(nb, timeout=timeout) if execute else saved_progress(nb)
            except (OSError, ValueError, RuntimeError, TimeoutError) as err:  # one bad notebook must not hide the room
                rows = [("(notebook)", "did not run", f"{type(err).__name__}: {err}"[:160])]
            room[home.name][nb.stem] = rows
    return room


def format_room(room: dict[str, dict[str, list[tuple[str, str, str]]]], detail: bool = False) -> str:
    """A table, one row per learner and one column per chapter ("passed/checks"), then the details if asked."""
    chapters = sorted({stem for chapters in room.values() for stem in chapters})
    width = max([len("learner"), *(len(name) for name in room)])
    lines = [f"{'learner':<{width}}  " + "  ".join(f"{c:>{max(len(c), 7)}}" for c in chapters)]
    for learner, done in room.items():
        cells = []
        for c in chapters:
            rows = done.get(c)
            text = f"{sum(s == 'passed' for _, s, _ in rows)}/{len(rows)}" if rows is not None else "-"
            cells.append(f"{text:>{max(len(c), 7)}}")
        lines.append(f"{learner:<{width}}  " + "  ".join(cells))
    lines.append(f"{len(room)} learner(s); '-' means the learner has no copy of that chapter.")
    if detail:
        for learner, done in room.items():
            for stem, rows in done.items():
                lines.append(format_rows(f"{learner} / {stem}:", rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--room", type=Path, help="a folder of learners' homes: one row per learner")
    parser.add_argument("--pattern", default=ROOM_PATTERN, help=f"each learner's notebooks (default {ROOM_PATTERN})")
    parser.add_argument("--execute", action="store_true", help="with --room: re-run each notebook (slow, exact)")
    parser.add_argument("--detail", action="store_true", help="with --room: every check of every learner")
    parser.add_argument("--json", action="store_true", help="with --room: machine-readable output")
    args = parser.parse_args(argv)
    if not args.notebooks and args.room is None:
        parser.error("give notebooks to check, or --room FOLDER for every learner of a workshop hub")
    for path in args.notebooks:
        print(format_rows(f"{path}:", notebook_progress(path, timeout=args.timeout)))
    if args.room is not None:
        room = room_progress(args.room, args.pattern, execute=args.execute, timeout=args.timeout)
        if args.json:
            print(
                json.dumps(
                    {
                        learner: {
                            stem: [dict(zip(("check", "status", "detail"), r)) for r in rows]
                            for stem, rows in done.items()
                        }
                        for learner, done in room.items()
                    },
                    indent=1,
                )
            )
        else:
            print(format_room(room, detail=args.detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
