"""Claims: the numbers the course's prose quotes about a result, checked against a fresh run.

A chapter's markdown writes each such number once, as `{{claim:NAME=VALUE}}`;
`course/build.py` renders VALUE into the notebooks and records the claim (the quoted
text, the interval a measurement must fall in, and the source line) in `claims.json`
beside this module. The solution cell that produces the number calls
`claim("NAME", measured)`, with the measurement in the units the prose shows (a claim
quoted as "41%" is measured as 41, not 0.41). Under the test suite
(`DIGSITE_STRICT_CLAIMS=1`, set by the repository's conftest) a measurement outside its
interval fails with the claim's name, its source line, the quoted and the measured value,
so a retrained organism or a new library version cannot leave a false sentence behind.
A learner's own run only gets a gentle note: their code may differ from the solution.

Two more environment variables serve the maintainers: `DIGSITE_CLAIMS_LOG=path` appends
one JSON line per call (name, measured value, whether it held), which shows every drift of
a run at once and which claims a run measured; `DIGSITE_CLAIMS_MANIFEST=path` reads the
claims from another manifest (the tests use it to prove that a changed quote fails).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

__all__ = ["ClaimDrift", "claim", "claims"]

MANIFEST = Path(__file__).with_name("claims.json")
STRICT_ENV = "DIGSITE_STRICT_CLAIMS"
LOG_ENV = "DIGSITE_CLAIMS_LOG"
MANIFEST_ENV = "DIGSITE_CLAIMS_MANIFEST"


class ClaimDrift(AssertionError):
    """A number the prose quotes is no longer what the code measures."""


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, dict]:
    return json.loads(Path(path).read_text())


def claims() -> dict[str, dict]:
    """Every quoted claim, by name: {"quoted", "low", "high", "where"}."""
    return _load(os.environ.get(MANIFEST_ENV) or str(MANIFEST))


def claim(name: str, measured: float) -> float:
    """Check one measured number against the prose's quote of it; return the measurement.

    Raises KeyError (with what to do) for a name the prose never quotes. A measurement
    outside the claim's interval raises ClaimDrift when DIGSITE_STRICT_CLAIMS=1, and
    otherwise prints a note.
    """
    known = claims()
    if name not in known:
        raise KeyError(
            f"No sentence quotes a claim named {name!r}. Write it in the chapter's markdown as "
            f"{{{{claim:{name}=VALUE}}}} and run `python course/build.py`."
        )
    spec = known[name]
    value = float(measured)
    held = spec["low"] <= value <= spec["high"]
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"name": name, "measured": value, "held": held, **spec}, ensure_ascii=False) + "\n")
    if held:
        return measured
    message = (
        f"The claim {name!r} at {spec['where']} quotes {spec['quoted']}, but this run measured {value:.6g} "
        f"(accepted: {spec['low']:.6g} to {spec['high']:.6g})."
    )
    if os.environ.get(STRICT_ENV) == "1":
        raise ClaimDrift(message + " Update the sentence (and its claim) or find what changed.")
    print("\u26a0\ufe0f " + message + " If you changed the code, that is expected; otherwise, tell us.")
    return measured
