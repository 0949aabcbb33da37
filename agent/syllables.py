"""Words as a singer meets them: syllables, stresses and rhymes.

A lyric is set one syllable per note, so every word has to be cut into the pieces that go under
the notes, and we need to know which piece carries the word's stress (it belongs on a strong beat)
and what the end of a line rhymes with.

- How many syllables, and which is stressed, comes from the CMU Pronouncing Dictionary through
  ``pronouncing``. Where a word has several pronunciations the first (the dictionary's usual one)
  is used.
- Where to cut the written word comes first from ``pyphen``'s hyphenation patterns. Hyphenation
  is not syllabification: the patterns never leave a single letter at either end, so "melody",
  "over" and "evening" come back uncut. So the cut points are chosen to match CMUdict's count:
  pyphen's points first, then points from the spelling rules below, until the word has as many
  pieces as it has syllables (or no sensible point is left, as in "fire": then the word keeps
  fewer pieces, and its count is the number of pieces, because that is what goes under notes).
- Words CMUdict does not know ("o'er", "starlit", made-up names) are cut by spelling rules written
  here, since neither library does it: vowel groups are syllable nuclei (a final silent "e" is
  not, a final consonant + "le" is); between two nuclei a single consonant starts the next
  syllable (me-lo-dy), a pair that can start an English syllable (bl, tr, th...) stays together
  (ta-ble, fa-ther), other clusters split before their last consonant (win-ter); the same rules
  give the extra cut points for known words. Their stress is guessed: the first syllable.

Monosyllables are sung stressed unless they are function words ("the", "and", "of"...), which
CMUdict marks stressed as often as not.

>>> [w.syllables for w in split_text("A melody, gently!")]
[('A',), ('me', 'lo', 'dy,'), ('gen', 'tly!')]
>>> split_word("beautiful").stresses
(1, 0, 0)
>>> rhymes("moon", "June"), rhymes("moon", "moan"), rhymes("moon", "moon")
(True, False, False)
>>> split_word("")
Traceback (most recent call last):
...
ValueError: not a word: ''
"""
from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "FUNCTION_WORDS",
    "Word",
    "core_of",
    "last_word",
    "rhyme_key",
    "rhymes",
    "split_text",
    "split_word",
    "syllable_count",
]

# Words that are sung unstressed when they stand alone as one syllable (articles, pronouns,
# prepositions, conjunctions, auxiliaries).
FUNCTION_WORDS = frozenset(
    """a an the and or but nor so yet if as at by for from in into of off on onto to up with
    than that this these those then there their they them thee thou thy thine my mine me i
    we us our you your he him his she her it its who whom whose which what when where
    is am are was were be been being do does did has have had shall will would should can could
    may might must not no o oh ah all each such own under over above below beneath among
    behind beyond upon within without only""".split()
)

# Letter pairs that can begin an English syllable: a consonant cluster ending in one of these
# keeps the pair together at the start of the next syllable (ta-ble, fa-ther, mo-ther).
_ONSET_PAIRS = frozenset(
    "bl br ch cl cr dr fl fr gl gr kn ph pl pr qu sc sh sk sl sm sn sp st sw th tr tw wh wr".split()
)
# Clusters that close a syllable: the cut goes after them (night-ly, pick-ing, sing-er).
_CODA_CLUSTERS = ("ght", "tch", "ck", "ng", "gh")
# Vowel pairs that make one sound; any other pair of adjacent vowels may be two syllables (li-on).
_VOWEL_DIGRAPHS = frozenset(
    "ai au aw ay ea ee ei eu ew ey ie oa oe oi oo ou ow oy ue ui uy".split()
)
_LETTERS = re.compile(r"[A-Za-z]")
_CORE = re.compile(r"^([^A-Za-z0-9']*)(.*?)([^A-Za-z0-9']*)$", re.S)
_DASHES = "\u2014\u2013"


@dataclass(frozen=True)
class Word:
    """One written word cut into the pieces sung on separate notes.

    ``syllables`` are pieces of ``text`` in order; joined they give ``text`` without the hyphens
    of a hyphenated compound ("moon-lit" -> ``("moon", "lit")``), because in an ABC ``w:`` line
    the hyphen is itself the mark between syllables. ``stresses`` has one entry per syllable:
    1 primary, 2 secondary, 0 none. ``source`` is "cmudict" or "rules" (spelling rules, for a
    word CMUdict does not know).
    """

    text: str
    syllables: tuple[str, ...]
    stresses: tuple[int, ...]
    source: str

    @property
    def count(self) -> int:
        """How many notes the word needs at least (one per syllable)."""
        return len(self.syllables)

    @property
    def sung_stress(self) -> tuple[bool, ...]:
        """Per syllable, whether a singer leans on it: the primary stress of a longer word, or a
        monosyllable that is not a function word."""
        if self.count == 1:
            return (core_of(self.text).lower() not in FUNCTION_WORDS,)
        return tuple(s == 1 for s in self.stresses)


def core_of(text: str) -> str:
    """The word without the punctuation around it.

    >>> core_of('"Moon,"'), core_of("o'er"), core_of("...")
    ('Moon', "o'er", '')
    """
    match = _CORE.match(text)
    return match.group(2) if match else text


@functools.lru_cache(maxsize=1)
def _hyphenator():
    import pyphen

    return pyphen.Pyphen(lang="en_US")


@functools.lru_cache(maxsize=50_000)
def _cmu_stresses(word: str) -> tuple[int, ...] | None:
    """Stress digits of the first CMUdict pronunciation of ``word`` (lower case), or None."""
    import pronouncing

    phones = pronouncing.phones_for_word(word)
    if not phones:
        return None
    return tuple(int(d) for d in pronouncing.stresses(phones[0]))


def _vowelish(word: str, i: int) -> bool:
    """Whether letter ``i`` of ``word`` (lower case letters and apostrophes) sounds as a vowel."""
    c = word[i]
    nxt = word[i + 1] if i + 1 < len(word) else ""
    prev = word[i - 1] if i > 0 else ""
    if c in "aeio":
        return True
    if c == "u":
        return prev != "q"  # the u of "qu" is a consonant sound
    if c == "y":
        return not (i == 0 and nxt in "aeiou" and nxt)  # "yes": consonant; "my", "day": vowel
    if c == "w":
        return prev in "aeo" and prev != "" and nxt not in "aeiouy"  # "snow", "new"; not "awake"
    return False


def _nuclei(word: str) -> list[tuple[int, int]]:
    """Vowel groups (start, end) of a lower-case word that are syllable nuclei, by spelling."""
    groups: list[tuple[int, int]] = []
    i = 0
    while i < len(word):
        if _vowelish(word, i):
            j = i
            while j + 1 < len(word) and _vowelish(word, j + 1):
                j += 1
            groups.append((i, j + 1))
            i = j + 1
        else:
            i += 1
    if len(groups) > 1:
        start, end = groups[-1]
        tail = word[start:]
        before = word[start - 1] if start > 0 else ""
        silent_e = tail == "e" and before not in "aeiouy" and not (
            before == "l" and start >= 2 and word[start - 2] not in "aeiouyl"
        )  # a final consonant + "le" (ta-ble, lit-tle) is sung, a plain final "e" is not
        silent_es = tail in ("es", "ed") and end == len(word) - 1 and _silent_ending(word, start)
        if silent_e or silent_es:
            groups.pop()
    return groups


def _silent_ending(word: str, start: int) -> bool:
    """Whether the "e" of a final "-es" / "-ed" starting at ``start`` is silent (loves, loved)."""
    before = word[max(0, start - 2):start]
    if word.endswith("ed"):
        return not before.endswith(("t", "d"))
    return not before.endswith(("s", "x", "z", "ch", "sh", "c", "g"))


def _rule_cuts(word: str) -> tuple[list[int], list[int]]:
    """Cut points by spelling: (between vowel groups, inside a vowel group that may be two sounds)."""
    nuclei = _nuclei(word)
    between: list[int] = []
    for (_, a), (b, _) in zip(nuclei, nuclei[1:]):
        cluster = word[a:b]
        if len(cluster) == 0:
            continue
        if b == len(word) - 1 and word.endswith("le") and len(cluster) >= 1:
            between.append(b - 1)  # a final consonant + "le" is its own syllable: lit-tle
        elif len(cluster) == 1:
            between.append(a + 1 if cluster == "x" else a)  # me-lo-dy; tax-i
        elif cluster[-2:] in _ONSET_PAIRS and cluster[-2] != cluster[-1]:
            between.append(b - 2)
        elif any(cluster.startswith(c) for c in _CODA_CLUSTERS):
            coda = next(c for c in _CODA_CLUSTERS if cluster.startswith(c))
            between.append(a + len(coda))  # sing-ing, night-ly
        else:
            between.append(b - 1)
    inside: list[int] = []
    for start, end in nuclei:
        for i in range(start + 1, end):
            if word[i - 1:i + 1] not in _VOWEL_DIGRAPHS and word[i - 1] != "'" and word[i] != "'":
                inside.append(i)
    return between, inside


# How a consonant phone that starts a syllable is usually spelled: used to place the cut so that
# the written piece starts where the sung syllable does ("eve-ning", not "e-vening").
_ONSET_SPELLINGS = {
    "B": ("b",), "CH": ("ch", "t"), "D": ("d",), "DH": ("th",), "F": ("f", "ph"), "G": ("g",),
    "HH": ("h", "wh"), "JH": ("j", "g", "d"), "K": ("k", "c", "q", "ch", "x"), "L": ("l",),
    "M": ("m",), "N": ("n", "kn", "gn"), "NG": ("ng", "n"), "P": ("p",), "R": ("r", "wr"),
    "S": ("s", "c", "sc"), "SH": ("sh", "ti", "ci", "s"), "T": ("t",), "TH": ("th",),
    "V": ("v", "f"), "W": ("w", "wh", "u"), "Y": ("y", "i", "u"), "Z": ("z", "s", "x"),
    "ZH": ("s", "g", "z"),
}
_ONSET_PHONE_PAIRS = frozenset(
    tuple(pair.split()) for pair in (
        "S T|S P|S K|S L|S M|S N|S W|P R|P L|B R|B L|T R|D R|K R|K L|K W|G R|G L|F R|F L|TH R|SH R"
    ).split("|")
)


def _syllable_onsets(phones: list[str]) -> list[str | None]:
    """For each syllable after the first, the first phone of its onset (None: it starts with a
    vowel), taking the longest onset English allows (one consonant, or a pair like "T R")."""
    vowels = [i for i, ph in enumerate(phones) if ph[-1].isdigit()]
    onsets: list[str | None] = []
    for left, right in zip(vowels, vowels[1:]):
        cluster = phones[left + 1:right]
        if not cluster:
            onsets.append(None)
        elif len(cluster) >= 2 and tuple(cluster[-2:]) in _ONSET_PHONE_PAIRS:
            onsets.append(cluster[-2])
        else:
            onsets.append(cluster[-1])
    return onsets


@functools.lru_cache(maxsize=50_000)
def _cmu_onsets(word: str) -> tuple[str | None, ...] | None:
    import pronouncing

    phones = pronouncing.phones_for_word(word)
    return tuple(_syllable_onsets(phones[0].split())) if phones else None


def _onset_matches(lower: str, cuts: list[int], onsets: tuple[str | None, ...] | None) -> int:
    """How many cuts start their piece with a spelling of the sung syllable's first sound."""
    if not onsets or len(onsets) != len(cuts):
        return 0
    score = 0
    for cut, onset in zip(cuts, onsets):
        if onset is None:
            score += lower[cut] in "aeiouy"
        else:
            score += lower.startswith(_ONSET_SPELLINGS.get(onset, ()), cut)
    return score


#: Most sets of cut points :func:`_choose_cuts` compares; beyond it, cuts are chosen greedily.
MAX_CUT_SETS = 5000


def _greedy_cuts(candidates: list[int], size: int, rank: dict[int, int],
                 keeps_vowels: Callable[[tuple[int, ...]], bool]) -> list[int]:
    """Up to ``size`` cut points, best-ranked first, each kept only if every piece still has a
    vowel: linear in the candidates, for words whose cut sets are too many to compare."""
    chosen: list[int] = []
    for cut in sorted(candidates, key=lambda c: (rank[c], c)):
        trial = tuple(sorted(chosen + [cut]))
        if keeps_vowels(trial):
            chosen = list(trial)
            if len(chosen) == size:
                break
    return chosen


def _choose_cuts(word: str, wanted: int) -> list[int]:
    """``wanted`` - 1 cut points (or fewer when no sensible point is left).

    Candidates: pyphen's points, then spelling-rule points between vowel groups, then points
    inside vowel groups. Every piece must keep a vowel. Among the sets of the right size, the
    one whose pieces start with the sounds CMUdict gives each syllable wins; ties go to pyphen's
    points, then to the rules' points.
    """
    lower = word.lower()
    pyphen_cuts = list(_hyphenator().positions(lower))
    between, inside = _rule_cuts(lower)
    rank = {c: 0 for c in pyphen_cuts}
    # A rule point in the same run of consonants as one of pyphen's is the same boundary placed
    # differently: pyphen's placement (dictionary hyphenation) wins.
    for c in between:
        if all(any(ch in "aeiouy" for ch in lower[min(c, p):max(c, p)]) for p in pyphen_cuts):
            rank.setdefault(c, 1)
    for c in inside:
        rank.setdefault(c, 2)
    candidates = sorted(c for c in rank if 0 < c < len(lower))
    onsets = _cmu_onsets(lower)

    def keeps_vowels(cuts: tuple[int, ...]) -> bool:
        bounds = [0, *cuts, len(lower)]
        return all(any(ch in "aeiouy" for ch in lower[a:b]) for a, b in zip(bounds, bounds[1:]))

    for size in range(min(wanted - 1, len(candidates)), 0, -1):
        if math.comb(len(candidates), size) > MAX_CUT_SETS:  # a long non-word ("aaaa...")
            return _greedy_cuts(candidates, size, rank, keeps_vowels)
        sets = [c for c in itertools.combinations(candidates, size) if keeps_vowels(c)]
        if sets:
            best = max(
                sets,
                key=lambda c: (_onset_matches(lower, list(c), onsets), -sum(rank[x] for x in c)),
            )
            return list(best)
    return []


def split_word(text: str) -> Word:
    """Cut one written word (punctuation allowed around it) into sung syllables.

    >>> split_word("melody").syllables, split_word("Evening,").syllables
    (('me', 'lo', 'dy'), ('Eve', 'ning,'))
    >>> w = split_word("snowdrift")  # not in CMUdict: spelling rules
    >>> w.syllables, w.stresses, w.source
    (('snow', 'drift'), (1, 0), 'rules')
    >>> split_word("moon-lit").syllables, split_word("lit-tle").stresses
    (('moon', 'lit'), (1, 0))
    """
    if not text or not any(ch.isalnum() for ch in text):
        raise ValueError(f"not a word: {text!r}")
    if "-" in core_of(text).strip("-"):
        return _split_compound(text)
    match = _CORE.match(text)
    lead, core, trail = match.group(1), match.group(2), match.group(3)
    lower = core.lower()
    stresses = _cmu_stresses(lower)
    source = "cmudict"
    if stresses is None:
        source = "rules"
        letters = re.sub(r"[^a-z]", "", lower)
        count = max(1, len(_nuclei(letters))) if letters else 1
        stresses = (1,) + (0,) * (count - 1)
    cuts = _choose_cuts(core, len(stresses)) if _LETTERS.search(core) else []
    pieces = [core[a:b] for a, b in zip([0] + cuts, cuts + [len(core)])]
    if len(pieces) < len(stresses):
        # Fewer pieces than sounds ("fire" is F AY ER): keep the strongest stress in each piece.
        stresses = _merge_stresses(stresses, len(pieces))
    pieces[0] = lead + pieces[0]
    pieces[-1] = pieces[-1] + trail
    return Word(text=text, syllables=tuple(pieces), stresses=tuple(stresses), source=source)


def _merge_stresses(stresses: tuple[int, ...], count: int) -> tuple[int, ...]:
    """Fold the trailing stresses into the last of ``count`` pieces (1 beats 2 beats 0)."""
    rank = {1: 2, 2: 1, 0: 0}
    head, tail = list(stresses[: count - 1]), stresses[count - 1:]
    head.append(max(tail, key=lambda s: rank[s]))
    return tuple(head)


def _split_compound(text: str) -> Word:
    """A hyphenated word, the hyphens dropped (they mark syllables in w:).

    When the hyphens already cut a dictionary word into its syllables ("lit-tle"), those are
    its syllables, with the dictionary's stresses; otherwise (a compound such as "moon-lit" or
    "snow-white") each part is a word of its own.
    """
    match = _CORE.match(text)
    lead, core, trail = match.group(1), match.group(2), match.group(3)
    # Pieces with no letter or digit ("o'-'-the") are punctuation, not syllables.
    parts = [p for p in core.split("-") if any(ch.isalnum() for ch in p)]
    joined = _cmu_stresses("".join(parts).lower())
    if joined is not None and len(joined) == len(parts) and len(parts) > 1:
        syllables = list(parts)
        syllables[0] = lead + syllables[0]
        syllables[-1] = syllables[-1] + trail
        return Word(text=text, syllables=tuple(syllables), stresses=joined, source="cmudict")
    words = [split_word(p) for p in parts]
    syllables = [s for w in words for s in w.syllables]
    syllables[0] = lead + syllables[0]
    syllables[-1] = syllables[-1] + trail
    source = "cmudict" if all(w.source == "cmudict" for w in words) else "rules"
    return Word(
        text=text,
        syllables=tuple(syllables),
        stresses=tuple(s for w in words for s in w.stresses),
        source=source,
    )


def split_text(text: str) -> list[Word]:
    """The words of a lyric line, each cut into syllables. Punctuation that stands alone (a dash,
    an ampersand is a word) is attached to the word before it, so it never takes a note.

    >>> [w.text for w in split_text("Sleep \u2014 my love & rest")]
    ['Sleep \u2014', 'my', 'love', '&', 'rest']
    >>> split_text("  ")
    []
    """
    for dash in _DASHES:
        text = text.replace(dash, f" {dash} ")
    tokens = text.split()
    words: list[Word] = []
    pending = ""
    for token in tokens:
        if token == "&":
            words.append(Word(text="&", syllables=("&",), stresses=(0,), source="rules"))
        elif not any(ch.isalnum() for ch in token):
            if words:
                last = words[-1]
                joined = last.text + " " + token
                words[-1] = Word(
                    text=joined,
                    syllables=last.syllables[:-1] + (last.syllables[-1] + " " + token,),
                    stresses=last.stresses,
                    source=last.source,
                )
            else:
                pending += token
        else:
            words.append(split_word(pending + token))
            pending = ""
    return words


def syllable_count(text: str) -> int:
    """Sung syllables in a line of text (one note each at least).

    >>> syllable_count("Twinkle, twinkle, little star")
    7
    """
    return sum(w.count for w in split_text(text))


def last_word(text: str) -> str:
    """The last word of a line (without punctuation), or '' when it has none.

    >>> last_word("Over the hills and far away!")
    'away'
    """
    for token in reversed(text.replace("-", " ").split()):
        core = core_of(token)
        if any(ch.isalpha() for ch in core):
            return core
    return ""


def _spelled_rhyme(word: str) -> str:
    """Rhyme by spelling, for words CMUdict lacks: the last sung vowel group to the end."""
    nuclei = _nuclei(word)
    return word[nuclei[-1][0]:] if nuclei else word


@functools.lru_cache(maxsize=50_000)
def rhyme_key(word: str) -> frozenset[str]:
    """What ``word`` rhymes on: CMUdict phones from its last stressed vowel to the end (stress
    marks dropped), one per pronunciation; spelled for words CMUdict does not know.

    >>> sorted(rhyme_key("night"))
    ['cmu:AY T']
    >>> sorted(rhyme_key("snowdrift"))
    ['txt:ift']
    """
    import pronouncing

    lower = core_of(word).lower().replace("\u2019", "'")
    phones = _spoken_forms(lower, pronouncing.phones_for_word(lower))
    if phones:
        return frozenset("cmu:" + re.sub(r"\d", "", pronouncing.rhyming_part(p)) for p in phones)
    letters = re.sub(r"[^a-z]", "", lower)
    return frozenset({"txt:" + _spelled_rhyme(letters)}) if letters else frozenset()


def _spoken_forms(word: str, phones: list[str]) -> list[str]:
    """The pronunciations of ``word`` that read it as a word: CMUdict also spells some words out
    as letters ("us" as "U.S.", Y UW EH S), and "press" would rhyme with "us" by that one. A
    reading with more stressed syllables than the written word has vowel groups is such a
    spelling-out (each letter spelled is stressed), unless every reading has more.

    >>> _spoken_forms("us", ["AH1 S", "Y UW2 EH1 S"]), _spoken_forms("hour", ["AW1 ER0"])
    (['AH1 S'], ['AW1 ER0'])
    >>> _spoken_forms("wind", ["W AY1 N D", "W IH1 N D"])
    ['W AY1 N D', 'W IH1 N D']
    """
    groups = max(1, len(_nuclei(re.sub(r"[^a-z]", "", word))))
    spoken = [p for p in phones if sum(ch in "12" for ch in p) <= groups]
    return spoken or phones


def rhymes(a: str, b: str) -> bool:
    """Whether two words rhyme: the same sound from the last stressed vowel on, and not the same
    word, nor the same sound before it ("day" and "today", "see" and "sea": an identical rhyme
    sings as the word rhymed with itself). When only one is in CMUdict both are compared by
    spelling.

    >>> rhymes("light", "night"), rhymes("sky", "lullaby"), rhymes("love", "move")
    (True, True, False)
    >>> rhymes("day", "today"), rhymes("sea", "see"), rhymes("Home", "home!")
    (False, False, False)
    >>> rhymes("press", "us"), rhymes("wind", "mind")  # not by "us" spelled out as "U.S."
    (False, True)
    """
    wa, wb = core_of(a).lower(), core_of(b).lower()
    if not wa or not wb or wa == wb:
        return False
    ka, kb = rhyme_key(wa), rhyme_key(wb)
    if ka & kb:
        return not (_onsets(wa) & _onsets(wb))
    return _spelled_match(wa, wb, ka, kb)


@functools.lru_cache(maxsize=20_000)
def _onsets(word: str) -> frozenset[str]:
    """The sound just before a word's rhyming part, one per CMUdict pronunciation ("" when the
    rhyme starts the word): two words that rhyme and share it are an identical rhyme."""
    import pronouncing

    out = set()
    for phones in pronouncing.phones_for_word(word.replace("\u2019", "'")):
        before = phones[:len(phones) - len(pronouncing.rhyming_part(phones))].split()
        out.add(re.sub(r"\d", "", before[-1]) if before else "")
    return frozenset(out)


def _spelled_match(wa: str, wb: str, ka: frozenset[str], kb: frozenset[str]) -> bool:
    a_known = any(k.startswith("cmu:") for k in ka)
    b_known = any(k.startswith("cmu:") for k in kb)
    if a_known != b_known:
        la, lb = re.sub(r"[^a-z]", "", wa), re.sub(r"[^a-z]", "", wb)
        return bool(la and lb) and _spelled_rhyme(la) == _spelled_rhyme(lb)
    return False
