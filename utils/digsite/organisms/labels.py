"""Ground-truth labels of toy-language tokens, read off the generator that wrote them (`data.py`).

The generator fixes each word's category and each indirect-object sentence's roles, so these
labels are known, not inferred: `word_categories`, `ioi_roles`, `token_labels`. (What a model
*does* with them is not known: a latent or head that matches a label is a hypothesis.)
"""

from __future__ import annotations

from typing import Sequence

from . import data as D


def word_categories() -> dict[str, str]:
    """Every toy-language word -> its category in the generator (name, animal, number, place, ...)."""
    groups: dict[str, list[str]] = {
        "name": D.NAMES,
        "place": D.PLACES,
        "object": D.OBJECTS,
        **{f"{c} (member)": ms for c, ms in D.CATEGORIES.items()},
        "category word": list(D.CATEGORIES),
        "colour": D.COLORS,
        "city": D.CITIES,
        "country": D.COUNTRIES,
        "number": D.NUMBER_WORDS,
        "give verb": D.GIVE_VERBS,
        "talk verb": D.TALK_VERBS,
        "move verb": D.MOVE_VERBS,
        "activity": D.ACTIVITIES,
        "event": D.EVENTS,
        "adjective": D.ADJECTIVES,
        "time": D.TIMES,
        "day": D.DAYS,
        "season": D.SEASONS,
    }
    out: dict[str, str] = {}
    for cat, words in groups.items():
        for w in words:
            out.setdefault(w, cat)
    out["animal"] = "category word"  # "animal" is both a category word and never a member
    return out


def ioi_roles(str_tokens: Sequence[str]) -> list[str | None]:
    """The indirect-object role of each token of a toy-language sequence, None elsewhere.

    Our grammar makes them exact: "S2" is a name right before a give or talk verb, "END" is a
    "to" right before a name, "IO answer" the name after it; "S1" / "IO" are the names of the
    "A and B" pair, told apart by which one comes back as S2.
    """
    names, verbs = set(D.NAMES), set(D.GIVE_VERBS) | set(D.TALK_VERBS)
    toks = [t.strip() for t in str_tokens]
    roles: list[str | None] = [None] * len(toks)
    pair_at: list[int] = []
    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        prev = toks[i - 1] if i > 0 else ""
        if t in names and (nxt == "and" or prev == "and"):
            pair_at.append(i)
        if t in names and nxt in verbs:
            roles[i] = "S2"
            for j in pair_at[-2:]:
                roles[j] = "S1" if toks[j] == t else "IO"
            pair_at = []
        if t == "to" and nxt in names:
            roles[i] = "END"
            roles[i + 1] = "IO answer"
    return roles


def token_labels(str_tokens: Sequence[str]) -> list[str]:
    """Each token's ground-truth label: its IOI role where it has one, else its word category, else the word."""
    cats = word_categories()
    roles = ioi_roles(str_tokens)
    return [r if r is not None else cats.get(t.strip(), f"'{t.strip()}'") for t, r in zip(str_tokens, roles)]
