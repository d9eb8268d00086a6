"""The facilitator's view of a room: one row per learner, read from each learner's saved notebooks."""

import json

import nbformat
import pytest

from digsite.progress import format_room, main, room_progress, saved_progress


def _notebook(path, outputs_per_check):
    """A saved notebook with one cell per check call, with the outputs a learner's run left."""
    nb = nbformat.v4.new_notebook()
    for name, outputs in outputs_per_check.items():
        cell = nbformat.v4.new_code_cell(f"def f(x):\n    return x\n\nch01.{name}(f)")
        cell.outputs = [nbformat.v4.new_output(**o) for o in outputs]
        nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


PASSED = [{"output_type": "stream", "name": "stdout", "text": "\u2705 check_a: all checks passed.\n"}]
STUB = [
    {
        "output_type": "error",
        "ename": "CheckFailed",
        "evalue": "`f` is not implemented yet: replace it",
        "traceback": [],
    }
]
WRONG = [
    {"output_type": "error", "ename": "CheckFailed", "evalue": "\u274c f: the attention is transposed", "traceback": []}
]


@pytest.fixture
def room(tmp_path):
    homes = tmp_path / "homes"
    _notebook(homes / "alice" / "chapters" / "01_hooks.ipynb", {"check_a": PASSED, "check_b": WRONG, "check_c": []})
    _notebook(homes / "alice" / "chapters" / "02_logit_lens.ipynb", {"check_a": PASSED})
    _notebook(homes / "bob" / "chapters" / "01_hooks.ipynb", {"check_a": STUB, "check_b": [], "check_c": []})
    (homes / "carol").mkdir()  # logged in once, no notebook yet
    (homes / "alice" / "chapters" / ".ipynb_checkpoints").mkdir()
    (homes / "alice" / "chapters" / "03_broken.ipynb").write_text("not json")
    return homes


def test_saved_progress_reads_outputs_without_running(room):
    rows = saved_progress(room / "alice" / "chapters" / "01_hooks.ipynb")
    assert [(n, s) for n, s, _ in rows] == [("check_a", "passed"), ("check_b", "failed"), ("check_c", "not started")]
    assert "transposed" in rows[1][2]
    assert [s for _, s, _ in saved_progress(room / "bob" / "chapters" / "01_hooks.ipynb")] == ["not started"] * 3


def test_room_table(room):
    progress = room_progress(room)
    assert list(progress) == ["alice", "bob", "carol"]
    assert set(progress["alice"]) == {"01_hooks", "02_logit_lens", "03_broken"}
    assert progress["alice"]["03_broken"][0][1] == "did not run"  # an unreadable notebook is reported, not fatal
    assert progress["carol"] == {}
    table = format_room(progress)
    alice = next(line for line in table.splitlines() if line.startswith("alice"))
    bob = next(line for line in table.splitlines() if line.startswith("bob"))
    assert alice.split()[1:3] == ["1/3", "1/1"] and bob.split()[1:3] == ["0/3", "-"]
    assert "3 learner(s)" in table
    assert "alice / 01_hooks:" in format_room(progress, detail=True)


def test_room_command_line(room, capsys):
    assert main(["--room", str(room), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["alice"]["01_hooks"][0] == {"check": "check_a", "status": "passed", "detail": ""}
    with pytest.raises(SystemExit):
        main([])
    with pytest.raises(NotADirectoryError, match="homes"):
        room_progress(room / "nobody")
