"""Claims: every number the prose quotes is measured by a solution cell, and a drift fails.

The mechanism (course/build.py renders `{{claim:NAME=VALUE}}` and writes claims.json;
`digsite.claims.claim` checks a measurement against it) is tested here in pieces that run in
seconds: the parsing of a quoted value, the manifest's consistency with the sources, a static
proof that every quoted claim is measured by some solution cell, and an end-to-end proof that
changing one quoted number in a copy of a chapter makes the check fail and name it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from digsite import claims as claims_module
from digsite.claims import ClaimDrift, claim

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("course_build", ROOT / "course" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

CALL = re.compile(r"""\bclaim\(\s*(?P<q>["'])(?P<name>[^"']+)(?P=q)""")
ANY_CALL = re.compile(r"\bclaim\(\s*(?P<arg>[^,)]*)")


def code_outside_solutions(source: Path) -> str:
    """All code cells of a chapter source, with BEGIN/END SOLUTION regions removed (what both notebooks run)."""
    return "\n".join(build.strip_solutions(text) for kind, text, _ in build.parse(source.read_text()) if kind == "code")


# --- parsing a quoted value ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "shown", "low", "high"),
    [
        ("0.91", "0.91", 0.905, 0.915),
        ("5.70", "5.70", 5.695, 5.705),  # a trailing zero is a digit of precision
        ("93%", "93%", 92.5, 93.5),
        ("9×", "9×", 8.5, 9.5),
        ("0.91±0.02", "0.91", 0.89, 0.93),
        ("40±10%", "40", 36, 44),  # relative tolerance
        ("41%±3%", "41%", 38, 44),  # absolute, in the quote's own unit
        ("5–12", "5–12", 5, 12),
        ("4–20×", "4–20×", 4, 20),
        ("−10.56", "−10.56", -10.565, -10.555),  # typographic minus
        ("57,000±2,000", "57,000", 55_000, 59_000),
    ],
)
def test_claim_bounds(spec, shown, low, high):
    got_shown, got_low, got_high = build.claim_bounds(spec)
    assert got_shown == shown
    assert got_low == pytest.approx(low) and got_high == pytest.approx(high)


@pytest.mark.parametrize("spec", ["about", "1, 2 and 3", "0.5 to 0.9"])
def test_claim_bounds_refuses_what_is_not_one_number_or_a_range(spec):
    with pytest.raises(ValueError, match="one number or a range"):
        build.claim_bounds(spec)


def test_render_replaces_each_claim_by_its_value_and_records_its_line():
    found: dict[str, dict] = {}
    text = "Head 1.2 scores {{claim:ch09.a=0.91}}.\nLoss falls to {{claim:ch09.b=5–12}} nats."
    assert (
        build.render_claims(text, "course/09_x.py", 40, found, "ch09.")
        == "Head 1.2 scores 0.91.\nLoss falls to 5–12 nats."
    )
    assert found["ch09.a"]["where"] == "course/09_x.py:40" and found["ch09.b"]["where"] == "course/09_x.py:41"


def test_a_claim_quoted_twice_is_refused():
    found: dict[str, dict] = {}
    build.render_claims("{{claim:ch09.a=0.91}}", "course/09_x.py", 1, found, "ch09.")
    with pytest.raises(ValueError, match="quoted twice"):
        build.render_claims("again {{claim:ch09.a=0.91}}", "course/09_x.py", 7, found, "ch09.")


def test_a_claim_must_carry_its_chapter_number():
    with pytest.raises(ValueError, match="must be named ch09"):
        build.render_claims("{{claim:ch01.a=0.91}}", "course/09_x.py", 1, {}, "ch09.")


# --- the manifest and the sources agree ------------------------------------------------------


def test_manifest_is_what_the_sources_generate():
    assert (ROOT / build.CLAIMS_FILE).read_text() == build.generate()[build.CLAIMS_FILE], (
        f"{build.CLAIMS_FILE} is stale: run `python course/build.py`."
    )


def test_every_quoted_claim_is_measured_by_a_solution_cell():
    """Static coverage: each claim in the manifest has a literal `claim("NAME", ...)` call in its
    chapter's code, outside BEGIN/END SOLUTION (so it runs in both notebooks); and every call
    names a claim some sentence quotes."""
    manifest = json.loads((ROOT / build.CLAIMS_FILE).read_text())
    measured: dict[str, set[str]] = {}
    for source in build.sources():
        code = code_outside_solutions(source)
        names = {m["name"] for m in CALL.finditer(code)}
        dynamic = [m["arg"] for m in ANY_CALL.finditer(code) if not m["arg"].strip().startswith(("'", '"'))]
        assert not dynamic, (
            f"{source.name}: claim() must name its claim literally (the coverage test reads it): {dynamic}"
        )
        for name in names:
            measured.setdefault(name, set()).add(source.name)
    unmeasured = sorted(f"{n} (quoted at {c['where']})" for n, c in manifest.items() if n not in measured)
    assert not unmeasured, "quoted but never measured by a solution cell: " + ", ".join(unmeasured)
    unknown = sorted(n for n in measured if n not in manifest)
    assert not unknown, "measured but quoted by no sentence: " + ", ".join(unknown)
    for name, where in measured.items():
        chapter = manifest[name]["where"].split(":")[0].split("/")[-1]
        assert where == {chapter}, f"{name} is quoted in {chapter} but measured in {sorted(where)}"


def test_no_inert_output_markers_are_left():
    """`# NBVAL_CHECK_OUTPUT` compares nothing: the build strips outputs. Claims replace it."""
    marked = [p.name for p in build.sources() if "NBVAL_CHECK_OUTPUT" in p.read_text()]
    assert not marked, f"inert NBVAL_CHECK_OUTPUT markers in {marked}; quote the numbers as claims instead"


# --- a drift fails, and says where -----------------------------------------------------------


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setenv("DIGSITE_STRICT_CLAIMS", "1")


def test_unknown_claim_names_say_what_to_do(strict):
    with pytest.raises(KeyError, match="claim:ch99.nothing=VALUE"):
        claim("ch99.nothing", 1.0)


def test_a_learner_only_gets_a_note(monkeypatch, capsys):
    monkeypatch.setenv("DIGSITE_STRICT_CLAIMS", "0")
    name, spec = next(iter(claims_module.claims().items()))
    assert claim(name, spec["high"] + 1e6) == spec["high"] + 1e6
    assert name in capsys.readouterr().out


def test_the_log_records_every_measurement(monkeypatch, tmp_path, strict):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("DIGSITE_CLAIMS_LOG", str(log))
    name, spec = next(iter(claims_module.claims().items()))
    claim(name, (spec["low"] + spec["high"]) / 2)
    with pytest.raises(ClaimDrift):
        claim(name, spec["high"] + 1)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["name"], r["held"]) for r in rows] == [(name, True), (name, False)]


def measure_position_similarity() -> float:
    """The measurement behind ch01.pos_similarity_2, as chapter 1's cell makes it (seconds, not a notebook run)."""
    from digsite import load_model

    W_pos = load_model("induction", device="cpu").W_pos.detach()
    unit = W_pos / W_pos.norm(dim=-1, keepdim=True)
    return (unit @ unit.T).diagonal(2).mean().item()


def test_perturbing_one_quoted_number_in_a_copy_fails_and_names_it(tmp_path, monkeypatch, strict):
    """The proof the mechanism can fail: change "0.83" in a copy of chapter 1 and check the
    same measurement against the copy's manifest. The error must name the claim, its source
    line, the quoted and the measured value."""
    name = "ch01.pos_similarity_2"
    measured = measure_position_similarity()
    assert claim(name, measured) == measured  # the real quote holds

    source = ROOT / "course" / "01_hooks.py"
    text = source.read_text()
    quoted = claims_module.claims()[name]["quoted"]
    assert text.count(f"{{{{claim:{name}={quoted}}}}}") == 1
    copy = tmp_path / "course" / source.name
    copy.parent.mkdir()
    copy.write_text(text.replace(f"{{{{claim:{name}={quoted}}}}}", f"{{{{claim:{name}=0.73}}}}"))
    found: dict[str, dict] = {}
    build.build(copy, found)
    manifest = tmp_path / "claims.json"
    manifest.write_text(json.dumps(found))
    monkeypatch.setenv("DIGSITE_CLAIMS_MANIFEST", str(manifest))

    with pytest.raises(ClaimDrift) as drift:
        claim(name, measured)
    message = str(drift.value)
    line = next(i for i, ln in enumerate(copy.read_text().splitlines(), 1) if f"claim:{name}=" in ln)
    assert name in message and f"01_hooks.py:{line}" in message
    assert "quotes 0.73" in message and f"measured {measured:.6g}" in message


def test_a_drifted_claim_fails_a_notebook_under_the_suite(tmp_path):
    """End to end through nbval: a two-cell chapter whose prose quotes a number its cell does not
    measure fails under pytest, and the failure names the claim."""
    source = tmp_path / "course" / "98_tiny.py"
    source.parent.mkdir()
    source.write_text(
        "# %% [markdown]\n# The answer is {{claim:ch98.answer=42}}.\n\n"
        "# %%\nfrom digsite.claims import claim\n\nclaim('ch98.answer', 6 * 7)\nclaim('ch98.answer', 6 * 9)\n"
    )
    found: dict[str, dict] = {}
    notebooks = build.build(source, found)
    notebook = tmp_path / "98_tiny.ipynb"
    notebook.write_text(notebooks["solutions/98_tiny.ipynb"])
    manifest = tmp_path / "claims.json"
    manifest.write_text(json.dumps(found))
    env = {**os.environ, "DIGSITE_CLAIMS_MANIFEST": str(manifest), "DIGSITE_STRICT_CLAIMS": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--rootdir",
            str(tmp_path),
            str(notebook),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert run.returncode != 0, run.stdout[-2000:]
    assert "ClaimDrift" in run.stdout and "ch98.answer" in run.stdout and "measured 54" in run.stdout, run.stdout[
        -3000:
    ]


def test_claims_accept_tensors():
    name, spec = next(iter(claims_module.claims().items()))
    value = torch.tensor((spec["low"] + spec["high"]) / 2)
    assert claim(name, value) is value
