"""Synthetic data for the course's model organisms, seeded and documented.

Everything a bundled organism was trained on comes from this module, so every
behaviour a learner finds has a known ground truth:

* the **toy language** ("toylang"): short English-like sentences of several
  kinds mixed together -- indirect-object sentences from a compositional
  template grammar (``ioi_prompts``), is-a / located-in facts
  (``fact_prompts``), number-word arithmetic (``arithmetic_prompts``),
  little narrative sentences, repeated phrases and repeated random word
  segments (so the models grow induction heads);
* **repeated random tokens** (``repeated_tokens``) for induction;
* **modular addition** (``all_pairs``, ``modadd_dataset``) for the grokking organism.

Conventions
-----------
* Texts are ordinary English strings ("When Mary and John went to the store,
  John gave a drink to"). The word-level tokenizer (``digsite.organisms.tokenizer``)
  splits on whitespace and punctuation, so every vocabulary word is ONE token.
* Answers carry a leading space (``" Mary"``), as GPT-2-style BPE tokenizers
  want; the word-level tokenizer ignores the space, so ``tok.encode(" Mary",
  add_special_tokens=False)`` and ``tok.encode("Mary", add_special_tokens=False)``
  both give the single id of ``Mary``. ``text + answer`` is the full sentence.
* Every generator takes a ``seed`` and uses its own ``random.Random(seed)``:
  the same arguments give the same data, independent of global RNG state.
* "Held-out" indirect-object prompts are new *combinations*: an unordered name
  pair together with a place (see ``is_heldout_combo``) that never occurs in a
  training sentence, although every name, place, object, verb, clause and
  template family occurs in training. ``split="heldout_template"`` uses a template
  family ("A met B at the PLACE, and then S gave ...") that never occurs in
  training at all (a stretch test, not a threshold).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

import torch

# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

NAMES: list[str] = [
    "Mary",
    "John",
    "Tom",
    "Anna",
    "James",
    "Sarah",
    "David",
    "Emma",
    "Michael",
    "Laura",
    "Paul",
    "Kate",
    "Mark",
    "Lisa",
    "Peter",
    "Alice",
    "Daniel",
    "Rose",
    "Chris",
    "Jane",
    "Robert",
    "Amy",
    "Steve",
    "Helen",
    "Adam",
    "Grace",
    "Frank",
    "Lucy",
    "George",
    "Claire",
    "Henry",
    "Ruth",
    "Jack",
    "Sophie",
    "Sam",
    "Ellen",
    "Ben",
    "Julia",
    "Max",
    "Nina",
]
PLACES: list[str] = [
    "store",
    "park",
    "school",
    "beach",
    "market",
    "library",
    "station",
    "garden",
    "cafe",
    "museum",
    "office",
    "hospital",
    "restaurant",
    "bakery",
    "zoo",
    "river",
    "farm",
    "church",
    "hotel",
    "cinema",
]
OBJECTS: list[str] = [
    "drink",
    "book",
    "ball",
    "key",
    "cake",
    "letter",
    "ring",
    "hat",
    "bag",
    "pen",
    "cup",
    "box",
    "card",
    "coin",
    "flower",
    "gift",
    "map",
    "ticket",
    "lamp",
    "toy",
    "sandwich",
    "pencil",
    "basket",
    "bottle",
    "candle",
    "guitar",
    "kite",
    "necklace",
    "phone",
    "scarf",
]
ANIMALS: list[str] = [
    "cat",
    "dog",
    "horse",
    "cow",
    "sheep",
    "lion",
    "tiger",
    "elephant",
    "mouse",
    "rabbit",
    "bear",
    "wolf",
    "fox",
    "goat",
    "pig",
]
BIRDS: list[str] = ["eagle", "owl", "sparrow", "robin", "crow", "parrot", "duck", "swan"]
FRUITS: list[str] = [
    "apple",
    "banana",
    "orange",
    "pear",
    "grape",
    "cherry",
    "lemon",
    "mango",
    "peach",
    "plum",
]
VEGETABLES: list[str] = ["carrot", "potato", "onion", "tomato", "cabbage", "pea", "bean", "pepper"]
TOOLS: list[str] = ["hammer", "saw", "axe", "drill", "wrench", "shovel", "rake", "chisel"]
INSTRUMENTS: list[str] = ["piano", "violin", "drum", "flute", "trumpet", "harp", "cello", "organ"]
VEHICLES: list[str] = ["car", "bus", "truck", "train", "bicycle", "boat", "plane", "tractor"]
COLORS: list[str] = ["red", "blue", "green", "yellow", "black", "white", "brown", "purple"]

#: category word -> member words ("a cat is an animal").
CATEGORIES: dict[str, list[str]] = {
    "animal": ANIMALS,
    "bird": BIRDS,
    "fruit": FRUITS,
    "vegetable": VEGETABLES,
    "tool": TOOLS,
    "instrument": INSTRUMENTS,
    "vehicle": VEHICLES,
}
#: city -> country ("Paris is in France").
CITY_COUNTRY: dict[str, str] = {
    "Paris": "France",
    "London": "England",
    "Rome": "Italy",
    "Berlin": "Germany",
    "Madrid": "Spain",
    "Tokyo": "Japan",
    "Cairo": "Egypt",
    "Lima": "Peru",
    "Moscow": "Russia",
    "Athens": "Greece",
    "Dublin": "Ireland",
    "Oslo": "Norway",
    "Vienna": "Austria",
    "Lisbon": "Portugal",
    "Delhi": "India",
    "Beijing": "China",
    "Toronto": "Canada",
    "Sydney": "Australia",
    "Nairobi": "Kenya",
    "Chicago": "America",
}
CITIES: list[str] = list(CITY_COUNTRY)
COUNTRIES: list[str] = sorted(set(CITY_COUNTRY.values()))

#: NUMBER_WORDS[i] is the word for i, 0..20.
NUMBER_WORDS: list[str] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]

# grammar pieces of the indirect-object sentences (all single words)
GIVE_VERBS: list[str] = [
    "gave",
    "handed",
    "passed",
    "sent",
    "brought",
    "threw",
    "showed",
    "offered",
    "sold",
    "lent",
]
TALK_VERBS: list[str] = ["talked", "spoke", "waved", "wrote", "whispered", "shouted", "smiled", "called"]
MOVE_VERBS: list[str] = ["went", "walked", "ran", "drove", "came"]
ACTIVITIES: list[str] = ["working", "playing", "eating", "waiting", "reading", "walking", "sitting"]
EVENTS: list[str] = ["argument", "party", "lunch", "dinner", "meeting", "chat"]
ADJECTIVES: list[str] = ["long", "short", "nice", "strange", "quiet", "loud", "cold", "warm", "sunny", "busy"]
CONJUNCTIONS: list[str] = ["When", "After", "Once", "Before"]
TIMES: list[str] = ["morning", "afternoon", "evening", "night", "week"]
DAYS: list[str] = ["Monday", "Tuesday", "Friday", "Sunday"]
SEASONS: list[str] = ["summer", "winter", "spring"]

FUNCTION_WORDS: list[str] = [
    "a",
    "an",
    "the",
    "The",
    "A",
    "and",
    "to",
    "at",
    "in",
    "is",
    "was",
    "were",
    "had",
    "went",
    "Then",
    "Afterwards",
    "While",
    "while",
    "On",
    "Later",
    "that",
    "day",
    "Last",
    "It",
    "met",
    "then",
    "plus",
    "minus",
    "likes",
    "saw",
    "found",
    "near",
    "very",
    "of",
    "with",
    "it",
    "arrived",
    "said",
    "hello",
    "goodbye",
    "on",
    "color",
    "big",
    "small",
    "old",
    "new",
    "happy",
    "sad",
]
PUNCTUATION: list[str] = [",", "."]

#: IOI template families used in training; "met" is the held-out family.
TRAIN_TEMPLATES: list[str] = ["when", "while", "then", "friends", "talk"]
HELDOUT_TEMPLATES: list[str] = ["met"]
_TEMPLATES: dict[str, str] = {
    "when": "{conj} {A} and {B} went to the {place}, {S} {give} a {obj} to",
    "while": "While {A} and {B} were {act} at the {place}, {S} {give} a {obj} to",
    "then": "Then, {A} and {B} had a {adj} {event} at the {place}. Afterwards, {S} {give} a {obj} to",
    "friends": "{A} and {B} {move} to the {place}. {S} {give} a {obj} to",
    "talk": "{A} and {B} were {act} at the {place}. {S} {talk} to",
    "met": "{A} met {B} at the {place}, and then {S} {give} a {obj} to",
}
#: optional prefix clauses (variable length) that precede an IOI sentence.
_PREFIXES: list[str] = [
    "On a {adj} day,",
    "Later that {time},",
    "Last {season},",
    "It was a {adj} {time}.",
    "The {animal} was very {adj2}.",
    "On {day},",
    "Later that day,",
    "It was {adj}.",
]


def all_words() -> list[str]:
    """Every word of the toy language, deduplicated, in a fixed order (the tokenizer's vocabulary)."""
    groups = [
        NAMES,
        PLACES,
        OBJECTS,
        *CATEGORIES.values(),
        list(CATEGORIES),
        COLORS,
        CITIES,
        COUNTRIES,
        NUMBER_WORDS,
        GIVE_VERBS,
        TALK_VERBS,
        MOVE_VERBS,
        ACTIVITIES,
        EVENTS,
        ADJECTIVES,
        CONJUNCTIONS,
        [c.lower() for c in CONJUNCTIONS],
        TIMES,
        DAYS,
        SEASONS,
        FUNCTION_WORDS,
        PUNCTUATION,
    ]
    seen: dict[str, None] = {}
    for g in groups:
        for w in g:
            seen.setdefault(w, None)
    return list(seen)


# --------------------------------------------------------------------------------------
# Indirect-object identification (IOI)
# --------------------------------------------------------------------------------------


@dataclass
class IOIPrompt:
    """One indirect-object prompt and its ABC corruption.

    text:         prompt without the answer, e.g. "When Mary and John went to the store, John gave a drink to"
    io:           the indirect object's name ("Mary"), the correct answer
    s:            the subject's name ("John"), mentioned twice
    answer:       " " + io (leading space; ``text + answer`` is the full sentence; one token)
    corrupt_text: the same sentence with the subject's two mentions replaced by two other,
                  distinct names ("When Mary and Nina went to the store, Ben gave a drink to"),
                  so the answer is no longer determined. Same token length as ``text``.
    template:     the template family ("when", "while", "then", "friends", "talk", "met")
    split:        "train", "heldout" or "heldout_template"
    """

    text: str
    io: str
    s: str
    answer: str
    corrupt_text: str
    template: str
    split: str


def _h(key: str) -> int:
    return zlib.crc32(key.encode())


def is_heldout_combo(name1: str, name2: str, place: str) -> bool:
    """True when the unordered name pair together with this place is reserved for evaluation.

    About 1 in 5 (pair, place) combinations is held out; every name and place still
    occurs in training with other partners.
    """
    a, b = sorted((name1, name2))
    return _h(f"{a}|{b}|{place}") % 5 == 0


def _fill(rng: random.Random, template: str, A: str, B: str, S: str, place: str) -> str:
    return _TEMPLATES[template].format(
        conj=rng.choice(CONJUNCTIONS),
        A=A,
        B=B,
        S=S,
        place=place,
        give=rng.choice(GIVE_VERBS),
        obj=rng.choice(OBJECTS),
        act=rng.choice(ACTIVITIES),
        adj=rng.choice(ADJECTIVES),
        event=rng.choice(EVENTS),
        move=rng.choice(MOVE_VERBS),
        talk=rng.choice(TALK_VERBS),
    )


def _prefix(rng: random.Random) -> str:
    return rng.choice(_PREFIXES).format(
        adj=rng.choice(ADJECTIVES),
        time=rng.choice(TIMES),
        day=rng.choice(DAYS),
        season=rng.choice(SEASONS),
        animal=rng.choice(ANIMALS),
        adj2=rng.choice(["big", "small", "old", "happy", "sad", "loud", "quiet"]),
    )


_LOWER_AFTER_COMMA = {*CONJUNCTIONS, "While"}


def _lower_first(t: str) -> str:
    return t[0].lower() + t[1:]


def _one_ioi(
    rng: random.Random, split: str, template: str | None, same_length: bool, prefix_prob: float = 0.5
) -> IOIPrompt:
    if split not in ("train", "heldout", "heldout_template"):
        raise ValueError(f"split must be 'train', 'heldout' or 'heldout_template', not {split!r}")
    families = HELDOUT_TEMPLATES if split == "heldout_template" else TRAIN_TEMPLATES
    fam = template if template is not None else rng.choice(families)
    if fam not in _TEMPLATES:
        raise ValueError(f"unknown template {fam!r}; known: {sorted(_TEMPLATES)}")
    while True:
        io, s = rng.sample(NAMES, 2)
        place = rng.choice(PLACES)
        held = is_heldout_combo(io, s, place)
        if (split == "train") != held:  # train: not held; heldout(_template): held-out combos only
            break
    A, B = (io, s) if rng.random() < 0.5 else (s, io)
    state = rng.getstate()
    text = _fill(rng, fam, A, B, s, place)
    c, d = rng.sample([n for n in NAMES if n not in (io, s)], 2)
    rng2 = random.Random()
    rng2.setstate(state)
    corrupt = _fill(rng2, fam, c if A == s else A, c if B == s else B, d, place)
    if not same_length and rng.random() < prefix_prob:
        p = _prefix(rng)
        while fam == "then" and p.endswith(","):
            p = _prefix(rng)
        if p.endswith(",") and text.split()[0] in _LOWER_AFTER_COMMA:  # "On Monday, when Mary and ..."
            text, corrupt = _lower_first(text), _lower_first(corrupt)
        text, corrupt = f"{p} {text}", f"{p} {corrupt}"
    return IOIPrompt(text=text, io=io, s=s, answer=" " + io, corrupt_text=corrupt, template=fam, split=split)


def ioi_prompts(
    n: int, seed: int = 0, split: str = "heldout", same_length: bool = False, template: str | None = None
) -> list[IOIPrompt]:
    """``n`` indirect-object prompts with their ABC corruptions.

    split: "train" (combinations used in training), "heldout" (new name-pair/place
        combinations, training template families; the evaluation set) or
        "heldout_template" (a template family never seen in training).
    same_length: when True, no variable-length prefix clause is added, so all prompts of
        one template family have the same token length (pass ``template=`` to get one
        family only, e.g. to stack a batch). A clean prompt and its ``corrupt_text`` always
        have the same token length.
    template: restrict to one family (see ``TRAIN_TEMPLATES`` / ``HELDOUT_TEMPLATES``).
    """
    rng = random.Random(f"ioi|{seed}|{split}")
    return [_one_ioi(rng, split, template, same_length) for _ in range(n)]


# --------------------------------------------------------------------------------------
# Facts and arithmetic
# --------------------------------------------------------------------------------------


def article(word: str) -> str:
    """'an' before a vowel, else 'a'."""
    return "an" if word[0].lower() in "aeiou" else "a"


def fact_table() -> list[tuple[str, str, str]]:
    """All true facts as (subject, relation, object): ("cat", "is-a", "animal"), ("Paris", "in", "France")."""
    out = [(m, "is-a", c) for c, ms in CATEGORIES.items() for m in ms]
    out += [(city, "in", country) for city, country in CITY_COUNTRY.items()]
    return out


def _fact_prompt(subj: str, rel: str, obj: str) -> tuple[str, str]:
    if rel == "is-a":
        return f"{article(subj)} {subj} is {article(obj)}", " " + obj
    return f"{subj} is in", " " + obj


def _false_object(rng: random.Random, subj: str, rel: str, obj: str) -> str:
    pool = list(CATEGORIES) if rel == "is-a" else COUNTRIES
    return rng.choice([o for o in pool if o != obj])


def fact_prompts(n: int, seed: int = 0, true: bool = True) -> list[tuple[str, str]]:
    """``n`` fact prompts as (text, answer): ("a cat is an", " animal"), ("Paris is in", " France").

    With ``true=False`` the answer is a wrong category / country, and the article in the
    prompt agrees with the wrong answer: ("a cat is a", " fruit"). Facts are sampled with
    replacement from ``fact_table()`` (n may exceed the number of facts).
    """
    rng = random.Random(f"facts|{seed}|{true}")
    table = fact_table()
    out = []
    for _ in range(n):
        subj, rel, obj = rng.choice(table)
        if not true:
            obj = _false_object(rng, subj, rel, obj)
        out.append(_fact_prompt(subj, rel, obj))
    return out


def false_facts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``fact_prompts(n, seed, true=False)``: prompts whose answer is the wrong category."""
    return fact_prompts(n, seed, true=False)


def fact_statements(n: int, seed: int = 0) -> list[tuple[str, bool]]:
    """``n`` full statements with truth labels, half true half false, shuffled, for probes.

    e.g. ("a cat is an animal", True), ("Paris is in Spain", False).
    """
    rng = random.Random(f"statements|{seed}")
    table = fact_table()
    out = []
    for i in range(n):
        subj, rel, obj = rng.choice(table)
        truth = i % 2 == 0
        if not truth:
            obj = _false_object(rng, subj, rel, obj)
        text, ans = _fact_prompt(subj, rel, obj)
        out.append((text + ans, truth))
    rng.shuffle(out)
    return out


def arithmetic_table() -> list[tuple[int, str, int, int]]:
    """All arithmetic facts (a, op, b, result) with number words 0..20: a+b<=20 (a,b<=10), a-b>=0 (b<=10)."""
    out = [(a, "plus", b, a + b) for a in range(11) for b in range(11)]
    out += [(a, "minus", b, a - b) for a in range(21) for b in range(11) if a >= b]
    return out


def arithmetic_prompts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` number-word sums and differences as (text, answer): ("three plus four is", " seven")."""
    rng = random.Random(f"arith|{seed}")
    table = arithmetic_table()
    out = []
    for _ in range(n):
        a, op, b, c = rng.choice(table)
        out.append((f"{NUMBER_WORDS[a]} {op} {NUMBER_WORDS[b]} is", " " + NUMBER_WORDS[c]))
    return out


# --------------------------------------------------------------------------------------
# Training text for the toy language
# --------------------------------------------------------------------------------------


def _narrative(rng: random.Random) -> str:
    k = rng.randrange(6)
    n, p = rng.choice(NAMES), rng.choice(PLACES)
    if k == 0:
        return f"{n} likes the {rng.choice(COLORS)} {rng.choice(OBJECTS)}."
    if k == 1:
        return f"The {rng.choice(ANIMALS)} ran to the {p}."
    if k == 2:
        return f"{n} saw a {rng.choice(COLORS)} {rng.choice(VEHICLES)} near the {p}."
    if k == 3:
        return f"{n} found {article(f := rng.choice(FRUITS))} {f} at the {p}."
    if k == 4:
        return f"{n} {rng.choice(MOVE_VERBS)} to the {p} on {rng.choice(DAYS)}."
    return f"The {p} was very {rng.choice(['big', 'small', 'old', 'new', 'busy', 'quiet'])}."


def _fact_sentence(rng: random.Random) -> str:
    if rng.random() < 0.5:
        subj, rel, obj = rng.choice(fact_table())
        t, a = _fact_prompt(subj, rel, obj)
        return f"{t}{a}."
    a, op, b, c = rng.choice(arithmetic_table())
    return f"{NUMBER_WORDS[a]} {op} {NUMBER_WORDS[b]} is {NUMBER_WORDS[c]}."


def _ioi_sentence(rng: random.Random) -> str:
    p = _one_ioi(rng, "train", None, same_length=False, prefix_prob=0.4)
    return p.text + p.answer + "."


def random_words(rng: random.Random, k: int) -> list[str]:
    """``k`` words drawn uniformly (with replacement) from the toy-language vocabulary, punctuation excluded."""
    words = [w for w in all_words() if w not in PUNCTUATION]
    return [rng.choice(words) for _ in range(k)]


def toylang_sentence(rng: random.Random) -> str:
    """One unit of toy-language training text, drawn from the training mix:

    45% indirect-object sentences (train split, with the answer and a full stop),
    25% facts / arithmetic, 10% narrative, 10% a sentence repeated twice in a row,
    10% a random word segment (3-12 words) repeated twice (for induction).
    """
    r = rng.random()
    if r < 0.45:
        return _ioi_sentence(rng)
    if r < 0.70:
        return _fact_sentence(rng)
    if r < 0.80:
        return _narrative(rng)
    if r < 0.90:
        s = rng.choice([_ioi_sentence, _fact_sentence, _narrative])(rng)
        return f"{s} {s}"
    seg = " ".join(random_words(rng, rng.randint(3, 12)))
    return f"{seg} {seg}."


def toylang_texts(n: int, seed: int = 0, max_words: int = 90) -> list[str]:
    """``n`` training documents: sentences from ``toylang_sentence`` joined until about ``max_words`` tokens."""
    rng = random.Random(f"toylang|{seed}")
    out = []
    for _ in range(n):
        parts: list[str] = []
        length = 0
        while True:
            s = toylang_sentence(rng)
            k = _approx_len(s)
            if parts and length + k > max_words:
                break
            parts.append(s)
            length += k
            if length > max_words:
                break
        out.append(" ".join(parts))
    return out


def _approx_len(s: str) -> int:
    return len(s.replace(",", " ,").replace(".", " .").split())


# --------------------------------------------------------------------------------------
# Repeated random tokens (induction) and modular addition
# --------------------------------------------------------------------------------------

#: ids of the word-level tokenizer's special tokens (see tokenizer.py).
PAD_ID, BOS_ID, UNK_ID = 0, 1, 2
N_SPECIAL = 3


def repeated_tokens(
    batch: int, seg_len: int, seed: int = 0, vocab_size: int | None = None, bos_id: int = BOS_ID, low: int = N_SPECIAL
) -> torch.LongTensor:
    """BOS, a random segment, the same segment again.

    Returns a LongTensor of shape (batch, 1 + 2*seg_len). Token ids are uniform in
    [low, vocab_size); vocab_size defaults to the toy-language tokenizer's size (so
    the segments are readable words, special tokens excluded). For another model pass
    its ``vocab_size`` and ``bos_id``.
    """
    if vocab_size is None:
        vocab_size = N_SPECIAL + len(all_words())
    g = torch.Generator().manual_seed(seed)
    seg = torch.randint(low, vocab_size, (batch, seg_len), generator=g)
    bos = torch.full((batch, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, seg, seg], dim=1)


def all_pairs(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every modular-addition input "a b =" and its answer, a-major (row a * p + b).

    Returns tokens (p*p, 3) = [a, b, p] (token id p is "=") and labels (p*p,) = (a + b) % p,
    so a (p*p, ...) tensor of results reshapes to (p, p, ...) indexed [a, b].
    """
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    return torch.stack([a, b, torch.full_like(a, p)], dim=1), (a + b) % p


def modadd_dataset(
    p: int = 113, frac_train: float = 0.3, seed: int = 0
) -> tuple[torch.LongTensor, torch.LongTensor, torch.LongTensor, torch.LongTensor]:
    """All p*p pairs "a b =" (`all_pairs`) split at random into train and test.

    Inputs have shape (N, 3): token ids [a, b, p] where id p is "="; token id i < p is
    the number i. Labels have shape (N,): (a + b) % p, predicted at the last position.
    Returns (train_inputs, train_labels, test_inputs, test_labels).
    """
    x, y = all_pairs(p)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(p * p, generator=g)
    k = int(round(frac_train * p * p))
    tr, te = perm[:k], perm[k:]
    return x[tr], y[tr], x[te], y[te]
