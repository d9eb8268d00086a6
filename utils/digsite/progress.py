"""Which exercises of a chapter pass: for a learner, a facilitator, or a workshop room.

From the command line, execute a saved exercise notebook and list its checks:

    python -m digsite.progress chapters/01_hooks.ipynb [more.ipynb ...]

In a notebook, `progress.summary()` lists the checks run so far in this kernel.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .checks.core import RESULTS

CHECK_CALL = re.compile(r"\bch\d\d\.(check_\w+)\(")
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
    rows = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = _cell_text(cell.get("outputs", []))
        for name in CHECK_CALL.findall(cell.source):
            if f"{name}: all checks passed" in text:
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
    lines += [f"  {SYMBOL[status]} {name:<40} {status}{'  ' + detail if detail else ''}" for name, status, detail in rows]
    done = sum(status == "passed" for _, status, _ in rows)
    lines.append(f"  {done}/{len(rows)} exercises pass")
    return "\n".join(lines)


def summary() -> None:
    """Print the checks run in this kernel so far and their latest verdicts."""
    rows = [(name, "passed" if ok else "failed", "") for name, ok in RESULTS.items()]
    print(format_rows("Checks run in this session:", rows) if rows else "No checks run yet in this session.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        print(format_rows(f"{path}:", notebook_progress(path, timeout=args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
