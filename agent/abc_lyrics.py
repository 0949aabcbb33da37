"""``w:`` lyrics lined up with the notes they are sung on (ABC 2.1 section 5).

Rules (section 5.1), as applied here:

* words are separated by spaces; ``-`` separates the syllables of a word;
* a ``-`` after a space or another ``-`` is a note of its own: the word goes on over it;
* ``_`` holds the previous syllable over one more note; ``*`` leaves a note without text;
* ``~`` joins words under one note (shown as a space); ``\\-`` prints a hyphen in a syllable;
* ``|`` moves on to the first note after the next bar line;
* consecutive ``w:`` lines after a music line are verses 1, 2, ...;
* a ``w:`` block covers the notes written since the previous ``w:`` block of the same voice;
* notes and chords take syllables; rests and grace notes do not; tied notes each take one.

``W:`` lines (words printed after the tune) are not aligned. The results feed validation
(too many / too few syllables), the score reader (``note.lyrics``) and the lyric writer
(how many notes each line offers).

>>> from agent.abc_text import parse_tune, tokenize_body
>>> tune = parse_tune("X:1\\nM:3/4\\nL:1/4\\nK:G\\nG A B|c2 B|A3|]\\nw:Hap-py day to you_\\n")
>>> lyrics = align_lyrics(tokenize_body(tune.body, tune))
>>> [(s.text, s.syllabic, s.extends) if s else None for s in lyrics.verses[0]]
... # doctest: +NORMALIZE_WHITESPACE
[('Hap', 'begin', False), ('py', 'end', False), ('day', 'single', False),
 ('to', 'single', False), ('you', 'single', True), None]
>>> lyrics.issues
()
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from agent.abc_text import Kind, Token, strip_comment

__all__ = ["Syllable", "LyricEvent", "LyricsIssue", "VerseLine", "Lyrics", "LineSlots",
           "parse_lyric_line", "slots_used", "align_lyrics", "note_slots_per_line"]

SYLLABIC = ("single", "begin", "middle", "end")


@dataclass(frozen=True)
class Syllable:
    """Text sung on one note. ``syllabic`` places it in its word (MusicXML's terms);
    ``extends`` is True when ``_`` holds it over the following note(s)."""

    text: str
    syllabic: str = "single"
    extends: bool = False


@dataclass(frozen=True)
class LyricEvent:
    """One step of a ``w:`` line: ``kind`` is 'syllable', 'hold' (``_``), 'skip' (``*``),
    'hyphen' (a ``-`` that takes a note of its own) or 'bar' (``|``)."""

    kind: str
    syllable: Syllable | None = None

    @property
    def takes_note(self) -> bool:
        return self.kind != "bar"


@dataclass(frozen=True)
class LyricsIssue:
    """A ``w:`` line whose syllables do not fit the notes it covers.

    ``kind`` is 'too-many' (syllables left over, ``extra`` of them) or 'too-few' (notes left
    without text at the end, ``extra`` of them).
    """

    kind: str
    line: int
    verse: int
    slots: int
    notes: int
    extra: int

    @property
    def message(self) -> str:
        if self.kind == "too-many":
            return (f"the lyrics on line {self.line} (verse {self.verse}) have {self.extra} "
                    f"syllable{'s' * (self.extra != 1)} more than the {self.notes} notes "
                    "they are sung on")
        return (f"the lyrics on line {self.line} (verse {self.verse}) cover {self.slots} of "
                f"{self.notes} notes: {self.extra} notes have no syllable")


@dataclass(frozen=True)
class VerseLine:
    """One ``w:`` line: its source ``line``, its verse number, its events, and the range
    ``[first_note, last_note)`` of melody notes (indices into :attr:`Lyrics.notes`) it covers."""

    line: int
    verse: int
    events: tuple[LyricEvent, ...]
    first_note: int
    last_note: int


@dataclass(frozen=True)
class Lyrics:
    """Lyrics of a tune aligned to its melody.

    ``notes`` are the note and chord tokens of the tune in order (every voice); ``verses[v]``
    has one entry per note: the :class:`Syllable` sung on it in verse ``v + 1``, or None.
    """

    notes: tuple[Token, ...]
    verses: tuple[tuple[Syllable | None, ...], ...]
    lines: tuple[VerseLine, ...]
    issues: tuple[LyricsIssue, ...] = ()

    @property
    def has_lyrics(self) -> bool:
        return bool(self.lines)


@dataclass(frozen=True)
class LineSlots:
    """How many notes a music line offers to lyrics: ``notes`` in total, and per bar."""

    line: int
    notes: int
    per_bar: tuple[int, ...] = field(default=())
    voice: str = ""


def parse_lyric_line(text: str) -> list[LyricEvent]:
    """Read the text of one ``w:`` line (without ``w:``) into events.

    >>> [(e.kind, e.syllable.text if e.syllable else None, e.syllable.syllabic if e.syllable
    ...   else None) for e in parse_lyric_line("gra- - tum, ev~er * |  A\\\\-men_")]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('syllable', 'gra', 'begin'), ('hyphen', None, None), ('syllable', 'tum,', 'end'),
     ('syllable', 'ev er', 'single'), ('skip', None, None), ('bar', None, None),
     ('syllable', 'A-men', 'single'), ('hold', None, None)]
    >>> parse_lyric_line("")
    []
    """
    events: list[LyricEvent] = []
    word_open = False       # the last syllable ended with '-': the word goes on
    current: list[str] = []

    def flush(hyphen_follows: bool) -> None:
        nonlocal word_open
        syllable_text = "".join(current)
        current.clear()
        if word_open:
            syllabic = "middle" if hyphen_follows else "end"
        else:
            syllabic = "begin" if hyphen_follows else "single"
        events.append(LyricEvent("syllable", Syllable(syllable_text, syllabic)))
        word_open = hyphen_follows

    index = 0
    text = strip_comment(text)
    while index < len(text):
        ch = text[index]
        if ch == "\\" and index + 1 < len(text) and text[index + 1] in "-_*~|%\\":
            current.append(text[index + 1])
            index += 2
            continue
        if ch == "-":
            if current:
                flush(hyphen_follows=True)
            else:
                events.append(LyricEvent("hyphen"))
                word_open = True
        elif ch in " \t":
            if current:
                flush(hyphen_follows=False)
        elif ch in "_*|":
            if current:
                flush(hyphen_follows=False)
            if ch == "_":
                events.append(LyricEvent("hold"))
            elif ch == "*":
                events.append(LyricEvent("skip"))
                word_open = False
            else:
                events.append(LyricEvent("bar"))
        elif ch == "~":
            current.append(" ")
        else:
            current.append(ch)
        index += 1
    if current:
        flush(hyphen_follows=False)
    return events


def join_syllables(syllables: Iterable[Syllable]) -> list[str]:
    """The words the syllables spell, each word's syllables joined.

    >>> join_syllables([Syllable("Twin", "begin"), Syllable("kle", "end"), Syllable("star")])
    ['Twinkle', 'star']
    """
    words: list[str] = []
    current = ""
    for syllable in syllables:
        current += syllable.text
        if syllable.syllabic in ("single", "end"):
            words.append(current)
            current = ""
    if current:
        words.append(current)
    return words


def slots_used(text: str) -> int:
    """How many notes a ``w:`` line's text takes (``|`` jumps are not counted).

    >>> slots_used("Twin-kle twin-kle lit-tle star_")
    8
    >>> slots_used("")
    0
    """
    return sum(1 for event in parse_lyric_line(text) if event.takes_note)


def _lyric_text(tokens: list[Token], index: int) -> tuple[str, int]:
    """The text of the ``w:`` token at ``index`` with any ``+:`` continuation lines."""
    text = tokens[index].text[2:]
    following = index + 1
    while following < len(tokens):
        token = tokens[following]
        if token.kind is Kind.LINE_BREAK or token.kind is Kind.COMMENT:
            following += 1
            continue
        if token.kind is Kind.FIELD and token.text.startswith("+:"):
            text += " " + token.text[2:]
            following += 1
            continue
        break
    return text, following


def align_lyrics(tokens: list[Token]) -> Lyrics:
    """Line up every ``w:`` line of a tokenized body with the notes it is sung on.

    >>> from agent.abc_text import Context, tokenize_body
    >>> body = "CDEF|G4|\\nw:one two three\\nw:a b c d e f\\n"
    >>> lyrics = align_lyrics(tokenize_body(body, Context()))
    >>> [issue.message for issue in lyrics.issues]  # doctest: +NORMALIZE_WHITESPACE
    ['the lyrics on line 2 (verse 1) cover 3 of 5 notes: 2 notes have no syllable',
     'the lyrics on line 3 (verse 2) have 1 syllable more than the 5 notes they are sung on']
    """
    note_index: dict[int, int] = {}  # position in tokens -> index into notes
    notes: list[Token] = []
    for position, token in enumerate(tokens):
        if token.kind is Kind.NOTE or token.kind is Kind.CHORD:
            note_index[position] = len(notes)
            notes.append(token)
    verses: list[list[Syllable | None]] = []
    lines: list[VerseLine] = []
    issues: list[LyricsIssue] = []
    block_start: dict[str, int] = {}   # voice -> token position where its next block begins
    verse_in_block: dict[str, int] = {}  # voice -> verse number of its last w: line, or 0
    position = 0
    while position < len(tokens):
        token = tokens[position]
        voice = token.voice
        if token.kind is not Kind.LYRICS:
            if token.kind not in _BETWEEN_VERSES and verse_in_block.get(voice):
                block_start[voice] = position  # music again: the next block starts here
                verse_in_block[voice] = 0
            position += 1
            continue
        verse = verse_in_block.get(voice, 0) + 1
        verse_in_block[voice] = verse
        start = block_start.get(voice, 0)
        text, following = _lyric_text(tokens, position)
        stream = [(i, tokens[i]) for i in range(start, position) if tokens[i].voice == voice
                  and tokens[i].kind in (Kind.NOTE, Kind.CHORD, Kind.BAR)]
        events = tuple(parse_lyric_line(text))
        while len(verses) < verse:
            verses.append([None] * len(notes))
        issue = _fill(verses[verse - 1], events, stream, note_index, token.line, verse)
        if issue:
            issues.append(issue)
        covered = [note_index[i] for i, t in stream if t.kind is not Kind.BAR]
        lines.append(VerseLine(token.line, verse, events,
                               covered[0] if covered else len(notes),
                               covered[-1] + 1 if covered else len(notes)))
        position = following
    return Lyrics(tuple(notes), tuple(tuple(v) for v in verses), tuple(lines), tuple(issues))


_BETWEEN_VERSES = frozenset({Kind.LINE_BREAK, Kind.COMMENT, Kind.SPACE, Kind.FIELD})


def _fill(slots: list[Syllable | None], events: tuple[LyricEvent, ...],
          stream: list[tuple[int, Token]], note_index: dict[int, int], line: int,
          verse: int) -> LyricsIssue | None:
    """Write one verse line's syllables into ``slots``; report a misfit as an issue."""
    cursor = 0
    last_syllable: int | None = None
    used = 0
    overflow = 0
    note_count = sum(1 for _, t in stream if t.kind is not Kind.BAR)
    for event in events:
        if event.kind == "bar":
            while cursor < len(stream) and stream[cursor][1].kind is not Kind.BAR:
                cursor += 1
            cursor += 1
            continue
        while cursor < len(stream) and stream[cursor][1].kind is Kind.BAR:
            cursor += 1
        if cursor >= len(stream):
            overflow += 1
            continue
        slot = note_index[stream[cursor][0]]
        cursor += 1
        used += 1
        if event.kind == "syllable":
            slots[slot] = event.syllable
            last_syllable = slot
        elif event.kind == "hold" and last_syllable is not None:
            slots[last_syllable] = replace(slots[last_syllable], extends=True)
    if overflow:
        return LyricsIssue("too-many", line, verse, used + overflow, note_count, overflow)
    remaining = sum(1 for _, t in stream[cursor:] if t.kind is not Kind.BAR)
    if remaining:
        return LyricsIssue("too-few", line, verse, used, note_count, remaining)
    return None


def note_slots_per_line(tokens: list[Token]) -> list[LineSlots]:
    """For each music line with notes: how many notes it offers to lyrics, also per bar.

    The lyric writer uses these as syllable budgets (one ``w:`` line per music line).

    >>> from agent.abc_text import Context, tokenize_body
    >>> body = "C2 D2|E z F G|\\n{g}A4-|A4|]\\n"
    >>> [(s.line, s.notes, s.per_bar) for s in note_slots_per_line(tokenize_body(body, Context()))]
    [(1, 5, (2, 3)), (2, 2, (1, 1))]
    >>> note_slots_per_line([])
    []
    """
    result: list[LineSlots] = []
    per_bar: list[int] = []
    count = 0
    line = None
    voice = ""
    for token in tokens:
        if token.kind is Kind.NOTE or token.kind is Kind.CHORD:
            if line is None:
                line, voice = token.line, token.voice
            if not per_bar:
                per_bar.append(0)
            per_bar[-1] += 1
            count += 1
        elif token.kind is Kind.BAR and per_bar and per_bar[-1]:
            per_bar.append(0)
        elif token.kind is Kind.LINE_BREAK and line is not None:
            result.append(LineSlots(line, count, tuple(n for n in per_bar if n), voice))
            per_bar, count, line = [], 0, None
    if line is not None:
        result.append(LineSlots(line, count, tuple(n for n in per_bar if n), voice))
    return result
