"""Claims: the numbers the course's prose quotes about a result, checked against a fresh run.

A chapter's markdown writes each such number once, as `{{claim:NAME=VALUE}}`;
`course/build.py` renders VALUE into the notebooks and records the claim (the quoted
text, the interval a measurement must fall in, and the source line) in `claims.json`
beside this module. The solution cell that produces the number calls
`claim("NAME", measured)`. Under the test suite (`DIGSITE_STRICT_CLAIMS=1`, set by the
repository's conftest) a measurement outside its interval fails with the claim's name,
its source line, the quoted and the measured value, so a retrained organism or a new
library version cannot leave a false sentence behind. A learner's own run only gets a
gentle note: their code may differ from the solution.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

__all__ = ["ClaimDrift", "claim", "claims"]

MANIFEST = Path(__file__).with_name("claims.json")
STRICT_ENV = "DIGSITE_STRICT_CLAIMS"


class ClaimDrift(AssertionError):
    """A number the prose quotes is no longer what the code measures."""


@lru_cache(maxsize=1)
def claims() -> dict[str, dict]:
    """Every quoted claim, by name: {"quoted", "low", "high", "where"}."""
    return json.loads(MANIFEST.read_text())


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
    if spec["low"] <= value <= spec["high"]:
        return measured
    message = (
        f"The claim {name!r} at {spec['where']} quotes {spec['quoted']}, but this run measured {value:.6g} "
        f"(accepted: {spec['low']:.6g} to {spec['high']:.6g})."
    )
    if os.environ.get(STRICT_ENV) == "1":
        raise ClaimDrift(message + " Update the sentence (and its claim) or find what changed.")
    print("\u26a0\ufe0f " + message + " If you changed the code, that is expected; otherwise, tell us.")
    return measured
