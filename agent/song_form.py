"""Song form: a verse and a chorus, marked as ABC parts, with words for each.

A song with "two verses and a chorus" is written here as two ABC parts (ABC 2.1 section 3.1.9):
``P:A`` before the verse and ``P:B`` before the chorus, both inside one repeat, so it is sung
verse 1, chorus, verse 2, chorus::

    P:A
    |:C D E F|G A B c|
    w:first verse words ...
    w:second verse words ...
    P:B
    c B A G|F E D C:|
    w:chorus words ...
    w:chorus words ...

Several ``w:`` lines under one music line are successive verses (ABC 2.1 section 5.1), so the
verse's two ``w:`` lines are the two verses, and the chorus repeats its words on its second
line, as it repeats its music. abc2midi plays the body straight through with the repeat
(no ``P:`` order line in the header), music21 ignores the ``P:`` lines, and
:func:`agent.abc_reader.read_tune` attaches the verses as lyric numbers 1 and 2.

The functions here take ABC text and give ABC text; the model is reached only through
callables passed in (``generate_text`` of :mod:`agent.lyrics`, a span rewriter), so tests run
without it. Every edit of one part keeps the other part byte for byte: a part is cut out as a
small tune of its own (the header and its lines), edited with the lyric functions of
:mod:`agent.lyrics`, and put back.

>>> song = shape_song(EXAMPLE, verse_bars=2, verses=2)
>>> print(song[song.index("K:"):], end="")
K:C
P:A
|:C D E F|G A B c||
P:B
c B A G|F E D C:|
>>> [(p.label, p.name, p.bars) for p in song_parts(song)]
[('A', 'verse', (1, 2)), ('B', 'chorus', (3, 4))]
>>> song_parts(EXAMPLE)
[]
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from agent.abc_text import Kind, parse_tune, split_bars, tokenize_body
from agent.errors import AbcError, InputError
from agent.lyric_fit import block_texts, note_slots, rewrite_blocks, words_of_w
from agent.lyrics import (GenerateText, LyricsConfig, add_verse, quote_lines, remove_lyrics,
                          set_words, write_lyrics)

__all__ = [
    "EXAMPLE", "SongFormConfig", "SongPart", "SongWords", "add_repeat", "add_song_verse",
    "describe_song", "find_part", "named_part", "part_tune", "part_words", "part_words_request",
    "put_part",
    "rewrite_part", "set_part_words", "shape_song", "song_parts", "song_request",
    "strip_form_words", "verse_count", "words_answer", "words_note", "write_chorus_words",
    "write_song_words",
]

#: A four-bar tune to show the functions on.
EXAMPLE = "X:1\nT:Four\nM:4/4\nL:1/4\nK:C\nC D E F|G A B c||\nc B A G|F E D C|]\n"

#: Part labels: the verse is part A, the chorus part B.
VERSE, CHORUS = "A", "B"
_NAMES = {VERSE: "verse", CHORUS: "chorus"}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "2": 2, "three": 3, "3": 3,
            "four": 4, "4": 4}
_CHORUS_WORD = re.compile(r"\b(?:chorus|refrain)\b", re.IGNORECASE)
_VERSES = re.compile(r"\b(?:(?P<count>a|an|one|single|two|three|four|\d)\s+)?verses?\b",
                     re.IGNORECASE)
#: "with two verses and a chorus", "verse and chorus" as said inside a theme.
_FORM_WORDS = re.compile(
    r"\s*,?\s*\b(?:with|in|and|having|that has)?\s*(?:(?:a|an|one|two|three|four|\d)\s+)?"
    r"(?:verses?|chorus|refrain)(?:\s+(?:and|&|plus|with)\s+(?:(?:a|an|one|two|\d)\s+)?"
    r"(?:verses?|chorus|refrain))*\b", re.IGNORECASE)
_WORDS_OF = re.compile(r"\b(?P<part>chorus|refrain|verse)\b(?:\s+(?:to|words to|lyrics to))?"
                       r"\s*(?:to|:|=|should (?:be|say|read)|with(?: the words)?)\s*:?\s*"
                       r"(?P<text>\S.*)$", re.IGNORECASE | re.DOTALL)


# --------------------------------------------------------------------------------------------
# Settings and results


@dataclass(frozen=True)
class SongFormConfig:
    """How a song is laid out and its words written."""

    verse_share: float = field(default=0.5, metadata={
        "help": "share of the tune's bars that the verse takes (the chorus has the rest)"})
    most_verses: int = field(default=2, metadata={
        "help": "verses a song holds: one repeat sings the verse and chorus twice"})
    chorus_seed_offset: int = field(default=100, metadata={
        "help": "added to the lyrics seed for the chorus, so it does not sample the verse's lines"})
    lyrics: LyricsConfig = field(default_factory=LyricsConfig, metadata={
        "help": "how each part's words are written and checked"})


@dataclass(frozen=True)
class SongPart:
    """One part of a song: its ``P:`` label, its name, the text offsets of its lines (from
    the line after ``P:`` to the next ``P:`` line or the end) and its bars (first, last; as
    :func:`agent.abc_text.split_bars` counts them, from 1)."""

    label: str
    name: str
    start: int
    end: int
    bars: tuple[int, int]


@dataclass(frozen=True)
class SongWords:
    """Words written for a song: the tune (words in only when ``ok``), each verse's lines, the
    chorus lines, and what went wrong."""

    abc: str
    verses: tuple[tuple[str, ...], ...] = ()
    chorus: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------------------------
# Requests in words


def song_request(text: str) -> int | None:
    """How many verses a message asks for with a chorus; None when it asks for no song form.

    >>> song_request("write a song with two verses and a chorus about the sea")
    2
    >>> song_request("a song with a verse and a refrain"), song_request("a song with a chorus")
    (1, 2)
    >>> song_request("a song about the sea") is None
    True
    """
    if not _CHORUS_WORD.search(text):
        return None
    m = _VERSES.search(text)
    if not m or not m.group("count"):
        return 2
    return _NUMBERS.get(m.group("count").lower(), 2)


def strip_form_words(theme: str | None) -> str | None:
    """A theme without the words that name the form ("home with a verse and a chorus" -> "home").

    >>> strip_form_words("home with two verses and a chorus"), strip_form_words("the sea")
    ('home', 'the sea')
    >>> strip_form_words("a verse and a chorus") is None
    True
    """
    if theme is None:
        return None
    kept = " ".join(_FORM_WORDS.sub(" ", theme).split()).strip(" ,.")
    return kept or None


def part_words_request(text: str) -> tuple[str, str] | None:
    """("chorus" or "verse", the words) for "change the chorus to: ..."; None otherwise.

    >>> part_words_request("change the chorus to: we sail at dawn / over the sea")
    ('chorus', 'we sail at dawn / over the sea')
    >>> part_words_request("make the chorus catchier") is None
    True
    """
    if not re.match(r"\s*(?:please\s+)?(?:change|set|make|replace|the|let|i want)\b", text,
                    re.IGNORECASE):
        return None
    m = _WORDS_OF.search(text)
    if not m:
        return None
    words = m.group("text").strip().strip("\"“”'")
    if not words or not re.search(r"[^\W\d_]", words):
        return None
    part = "chorus" if m.group("part").lower() in ("chorus", "refrain") else "verse"
    return part, words


def named_part(text: str) -> str | None:
    """The part a message names ("chorus" or "verse"), or None.

    >>> named_part("make the chorus catchier"), named_part("rewrite the verse"), named_part("hi")
    ('chorus', 'verse', None)
    """
    if _CHORUS_WORD.search(text):
        return "chorus"
    if re.search(r"\bverses?\b", text, re.IGNORECASE):
        return "verse"
    return None


# --------------------------------------------------------------------------------------------
# The parts of a tune


def _body_lines(abc: str) -> list[tuple[int, str]]:
    """(offset in ``abc``, text) of each line of the tune body, newline included."""
    tune = parse_tune(abc)
    out, offset = [], tune.body_offset
    for line in tune.body.splitlines(keepends=True):
        out.append((offset, line))
        offset += len(line)
    return out


def song_parts(abc: str) -> list[SongPart]:
    """The verse and chorus of a song marked ``P:A`` / ``P:B`` in its body ([] when it has
    neither). Parts with other labels are left out."""
    lines = _body_lines(abc)
    marks = [(i, line[2:].strip()) for i, (_, line) in enumerate(lines)
             if line.startswith("P:")]
    if not any(label in _NAMES for _, label in marks):
        return []
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    voice = next((t.voice for t in tokens if t.is_note), "")
    bars = [b for b in split_bars(tokens, tune) if b.voice == voice and b.tokens]
    end_of_body = tune.body_offset + len(tune.body)
    parts = []
    for n, (i, label) in enumerate(marks):
        start = lines[i][0] + len(lines[i][1])
        end = lines[marks[n + 1][0]][0] if n + 1 < len(marks) else end_of_body
        inside = [k + 1 for k, b in enumerate(bars) if start <= tune.body_offset + b.start < end]
        if label in _NAMES and inside:
            parts.append(SongPart(label, _NAMES[label], start, end, (inside[0], inside[-1])))
    return parts


def find_part(abc: str, name: str) -> SongPart:
    """The part called ``name`` ("verse" or "chorus"); InputError when the tune has none."""
    for part in song_parts(abc):
        if part.name == name:
            return part
    raise InputError(f"the tune has no {name} (its parts are not marked as verse and chorus)")


def part_tune(abc: str, name: str) -> str:
    """The ``name`` part ("verse", "chorus") as a tune of its own: the header and its lines.

    >>> song = shape_song(EXAMPLE, 2, 1)
    >>> part_tune(song, "chorus").split("K:C\\n")[1]
    'c B A G|F E D C|]\\n'
    >>> part_tune(EXAMPLE, "chorus")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the tune has no chorus (its parts are not marked as verse and chorus)
    """
    part = find_part(abc, name)
    return abc[:parse_tune(abc).body_offset] + abc[part.start:part.end]


def put_part(abc: str, name: str, part_abc: str) -> str:
    """``abc`` with its ``name`` part replaced by the body of ``part_abc`` (a tune made by
    :func:`part_tune` and edited); every other character stays as it was."""
    part = find_part(abc, name)
    header = abc[:parse_tune(abc).body_offset]
    if not part_abc.startswith(header):
        raise AbcError(f"the edited {name} changed the tune's header")
    body = part_abc[len(header):]
    if body and not body.endswith("\n") and abc[part.end:]:
        body += "\n"
    return abc[:part.start] + body + abc[part.end:]


# --------------------------------------------------------------------------------------------
# Laying out a song


def _melody_bars(abc: str) -> tuple[Any, list[Any], list[Any]]:
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    return tune, tokens, [b for b in split_bars(tokens, tune) if b.tokens]


def _chorus_on_its_line(abc: str, verse_bars: int) -> str:
    """``abc`` with a line break before bar ``verse_bars + 1`` when that bar starts mid-line."""
    tune, _, bars = _melody_bars(abc)
    body, start = tune.body, bars[verse_bars].start
    if not body[body.rfind("\n", 0, start) + 1:start].strip(" |"):
        return abc
    cut = bars[verse_bars - 1].bar_line.end if bars[verse_bars - 1].bar_line else start
    body = body[:cut].rstrip(" ") + "\n" + body[cut:].lstrip(" ")
    return abc[:tune.body_offset] + body + abc[tune.body_offset + len(tune.body):]


def _insert_line(abc: str, at_body: int, line: str) -> str:
    """``line`` inserted before the body line holding body offset ``at_body``."""
    tune = parse_tune(abc)
    start = tune.body_offset + tune.body.rfind("\n", 0, at_body) + 1
    return abc[:start] + line + "\n" + abc[start:]


def add_repeat(abc: str) -> str:
    """The whole body inside one repeat: ``|:`` before the first note, ``:|`` for the last bar
    line. A tune that has repeats already is refused (repeats do not nest in ABC).

    >>> add_repeat(EXAMPLE).split("K:C\\n")[1]
    '|:C D E F|G A B c||\\nc B A G|F E D C:|\\n'
    >>> add_repeat(add_repeat(EXAMPLE))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the tune has repeats already: a second verse has no repeat to go under
    """
    tune, tokens, _ = _melody_bars(abc)
    if any(t.kind is Kind.BAR and ":" in t.text for t in tokens):
        raise InputError("the tune has repeats already: a second verse has no repeat to go under")
    body = tune.body
    music = [t for t in tokens if t.is_timed or t.kind is Kind.BAR]
    last = music[-1]
    if last.kind is Kind.BAR:
        body = body[:last.start] + ":|" + body[last.end:]
    else:
        body = body[:last.end] + ":|" + body[last.end:]
    first = music[0]
    if first.kind is Kind.BAR and first.text.strip() == "|":
        body = body[:first.start] + "|:" + body[first.end:]
    else:
        body = body[:first.start] + "|:" + body[first.start:]
    return abc[:tune.body_offset] + body + abc[tune.body_offset + len(tune.body):]


def shape_song(abc: str, verse_bars: int, verses: int) -> str:
    """Mark the first ``verse_bars`` bars as the verse (``P:A``) and the rest as the chorus
    (``P:B``), the chorus starting on a line of its own; with two ``verses`` or more, the whole
    song goes inside one repeat (``|: ... :|``). Notes are not touched. A pickup is not
    counted: the verse then ends with the short bar that completes it.

    >>> shape_song(EXAMPLE, 4, 1)
    Traceback (most recent call last):
    ...
    agent.errors.InputError: a verse of 4 bars leaves no chorus in a tune of 4 bars
    """
    _, _, bars = _melody_bars(abc)
    split = verse_bars + 1 if _pickup(bars) else verse_bars  # the verse's last bar completes it
    if not 0 < split < len(bars):
        raise InputError(f"a verse of {verse_bars} bars leaves no chorus in a tune of "
                         f"{_whole_bars(bars)} bars")
    if verses > 1:
        abc = add_repeat(abc)
    abc = _chorus_on_its_line(abc, split)
    _, _, bars = _melody_bars(abc)
    abc = _insert_line(abc, bars[split].start, f"P:{CHORUS}")
    tune, tokens, _ = _melody_bars(abc)
    first = next(t for t in tokens if t.is_timed or t.kind is Kind.BAR)
    return _insert_line(abc, first.start, f"P:{VERSE}")


def _pickup(bars: list[Any]) -> bool:
    """Whether the first bar is a pickup (shorter than its meter's bar): then it is not counted,
    and the bar that closes the section completes it."""
    first = bars[0] if bars else None
    return bool(first and first.expected is not None and first.duration < first.expected)


def _whole_bars(bars: list[Any]) -> int:
    """How many bars ``bars`` make as a musician counts them: a pickup and the short bar that
    completes it are one bar between them."""
    full = [b for b in bars if b.expected is None or b.duration >= b.expected]
    short = [b for b in bars if b.expected is not None and b.duration < b.expected]
    if not short:
        return len(full)
    return len(full) + round(sum(b.duration / b.expected for b in short))


def _passes(abc: str) -> int:
    """How many times the song is sung through: 2 inside a repeat, else 1."""
    _, tokens, _ = _melody_bars(abc)
    return 2 if any(t.kind is Kind.BAR and ":" in t.text for t in tokens) else 1


def verse_count(abc: str) -> int:
    """How many verses of words the verse part holds (its most ``w:`` lines under a line)."""
    verse = part_tune(abc, "verse")
    return max((len(block_texts(verse, line)) for line in note_slots(verse)), default=0)


def _repeat_words(part_abc: str, times: int) -> str:
    """Each music line's first ``w:`` line, ``times`` times (the chorus sung after each verse)."""
    lines = note_slots(part_abc)
    blocks = {}
    for line in lines:
        have = block_texts(part_abc, line)
        blocks[line.index] = have[:1] * times if have else []
    return rewrite_blocks(part_abc, blocks, lines)


def part_words(abc: str, name: str) -> list[str]:
    """The words of each verse sung on part ``name`` (one string per verse, lines joined by
    " / "); a chorus repeated word for word is given once.

    >>> song = "X:1\\nM:2/4\\nL:1/4\\nK:C\\nP:A\\n|:C D|E F|\\n" \\
    ...        "w:one two three four\\nw:five six sev-en\\n" \\
    ...        "P:B\\nG A|B c:|\\nw:sing it loud now\\nw:sing it loud now\\n"
    >>> part_words(song, "verse"), part_words(song, "chorus")
    (['one two three four', 'five six seven'], ['sing it loud now'])
    """
    tune = part_tune(abc, name)
    per_line = [[words_of_w(t) for t in block_texts(tune, line)] for line in note_slots(tune)]
    count = max((len(v) for v in per_line), default=0)
    verses = [" / ".join(v[i] for v in per_line if len(v) > i) for i in range(count)]
    return list(dict.fromkeys(verses)) if name == "chorus" else verses


# --------------------------------------------------------------------------------------------
# Words for the parts


def write_song_words(abc: str, theme: str, generate_text: GenerateText,
                     config: SongFormConfig = SongFormConfig()) -> SongWords:
    """Words for a song laid out by :func:`shape_song`: each verse and the chorus written by the
    model on ``theme`` (:func:`agent.lyrics.write_lyrics` on each part alone, so the checks of
    rhyme, theme and fit apply part by part), the chorus words under each pass of the repeat.
    When a part's words fail their checks, the song comes back without words and the problems
    say which part."""
    verse, chorus = part_tune(abc, "verse"), part_tune(abc, "chorus")
    passes = _passes(abc)
    verses: list[tuple[str, ...]] = []
    problems: list[str] = []
    for number in range(1, passes + 1):
        write = write_lyrics if number == 1 else add_verse
        result = write(verse, theme, generate_text,
                       replace(config.lyrics, seed=config.lyrics.seed + 10 * number),
                       avoid=[line for lines in verses for line in lines])
        if not result.ok:
            problems += [f"verse {number}: {r}" for r in result.reasons[:2]]
            break
        verse = result.abc
        verses.append(result.lines)
    sung = write_lyrics(chorus, theme, generate_text,
                        replace(config.lyrics, seed=config.lyrics.seed + config.chorus_seed_offset),
                        avoid=[line for lines in verses for line in lines])
    if not sung.ok:
        problems += [f"chorus: {r}" for r in sung.reasons[:2]]
    if problems:
        return SongWords(abc, tuple(verses), sung.lines, tuple(problems))
    done = put_part(put_part(abc, "verse", verse), "chorus", _repeat_words(sung.abc, passes))
    return SongWords(done, tuple(verses), sung.lines)


def write_chorus_words(abc: str, theme: str, generate_text: GenerateText,
                       config: SongFormConfig = SongFormConfig()) -> SongWords:
    """New chorus words on ``theme`` ("make the chorus about leaving home"), written by the
    model, under each pass of the repeat; the verse and every note stay as they are."""
    sung = [line for words in part_words(abc, "verse") for line in words.split(" / ")]
    result = write_lyrics(remove_lyrics(part_tune(abc, "chorus"))[0], theme, generate_text,
                          replace(config.lyrics,
                                  seed=config.lyrics.seed + config.chorus_seed_offset + 1),
                          avoid=sung)
    if not result.ok:
        return SongWords(abc, (), result.lines, tuple(f"chorus: {r}" for r in result.reasons[:2]))
    chorus = _repeat_words(result.abc, _passes(abc))
    return SongWords(put_part(abc, "chorus", chorus), (), result.lines)


def set_part_words(abc: str, name: str, text: str,
                   config: LyricsConfig = LyricsConfig()) -> tuple[str, Any]:
    """The person's own words set on part ``name`` only (:func:`agent.lyrics.set_words`: a note
    may be split for an extra syllable); the chorus's words are repeated under each pass, a
    verse's words replace verse 1 and keep verse 2. The other part stays byte for byte. Returns
    the tune (unchanged when the words do not fit) and the :class:`agent.lyrics.WordsReport`."""
    tune = part_tune(abc, name)
    kept = [block_texts(tune, line)[1:] for line in note_slots(tune)]
    new, report = set_words(tune, text, config)
    if not report.ok:
        return abc, report
    lines = note_slots(new)
    if name == "chorus":
        new = _repeat_words(new, _passes(abc))
    elif len(lines) == len(kept) and any(kept) and _note_count(new) == _note_count(tune):
        new = rewrite_blocks(new, {line.index: block_texts(new, line)[:1] + later
                                   for line, later in zip(lines, kept)}, lines)
    return put_part(abc, name, new), report


def _note_count(abc: str) -> int:
    return sum(len(line.slots) for line in note_slots(abc))


def add_song_verse(abc: str, theme: str, generate_text: GenerateText,
                   config: SongFormConfig = SongFormConfig()) -> SongWords:
    """A second verse: the song goes inside a repeat if it has none (the notes kept), new words
    go under the verse as its second ``w:`` line, and the chorus words repeat under the chorus.
    A tune without marked parts but without repeats is taken whole as the verse. A song that
    already holds :attr:`SongFormConfig.most_verses` verses is refused with the reason."""
    if not song_parts(abc):
        return _add_plain_verse(abc, theme, generate_text, config)
    if verse_count(abc) >= config.most_verses:
        raise InputError(f"the song already has {verse_count(abc)} verses under its repeat; "
                         "change a verse's words instead")
    if verse_count(abc) == 0:
        raise InputError("the song has no words yet: ask for lyrics first")
    song = abc if _passes(abc) > 1 else add_repeat(abc)
    sung = [line for words in part_words(abc, "verse") + part_words(abc, "chorus")
            for line in words.split(" / ")]
    result = add_verse(part_tune(song, "verse"), theme, generate_text,
                       replace(config.lyrics, seed=config.lyrics.seed + 20), avoid=sung)
    if not result.ok:
        return SongWords(abc, (), (), tuple(f"verse 2: {r}" for r in result.reasons[:2]))
    chorus = _repeat_words(part_tune(song, "chorus"), 2)
    done = put_part(put_part(song, "verse", result.abc), "chorus", chorus)
    return SongWords(done, ((), result.lines), tuple(part_words(done, "chorus")))


def _add_plain_verse(abc: str, theme: str, generate_text: GenerateText,
                     config: SongFormConfig) -> SongWords:
    """A second verse for a tune with words but no parts: under a repeat of the whole tune."""
    verses = max((len(block_texts(abc, line)) for line in note_slots(abc)), default=0)
    if verses == 0:
        raise InputError("the tune has no words yet: ask for lyrics first")
    song = abc if _passes(abc) > 1 else add_repeat(abc)
    result = add_verse(song, theme, generate_text, replace(config.lyrics,
                                                          seed=config.lyrics.seed + 20))
    if not result.ok:
        return SongWords(abc, (), (), tuple(f"verse {verses + 1}: {r}"
                                            for r in result.reasons[:2]))
    return SongWords(result.abc, ((), result.lines))


def rewrite_part(abc: str, name: str, rewrite: Callable[[str, int, int], str],
                 make_singable: Callable[[str], tuple[str, str]] | None = None
                 ) -> tuple[str, str]:
    """Part ``name`` rewritten by ``rewrite(tune_without_words, first_bar, last_bar) -> tune``
    (the span rewriter of :mod:`agent.compose`), its words set again on the new notes, and the
    other part kept byte for byte. ``make_singable`` (``agent.singable.singable_for_words``) is
    applied to the rewritten part alone. Returns the tune and a sentence on the words."""
    part = find_part(abc, name)
    bare, _ = remove_lyrics(abc)
    new = rewrite(bare, *part.bars)
    new_part, _ = remove_lyrics(part_tune(new, name))
    sing_note = ""
    if make_singable is not None:
        new_part, sing_note = make_singable(new_part)
        sing_note = sing_note.replace("the whole tune", f"the whole {name}")
    old_words = part_words(abc, name)
    said = ""
    if old_words:
        text = "\n".join(old_words[0].split(" / "))
        worded, report = set_words(new_part, text)
        if report.ok:
            new_part = _repeat_words(worded, _passes(abc)) if name == "chorus" else worded
            said = f"The {name} words are set again on the new notes."
        else:
            said = (f"The old {name} words did not fit the new notes, so the {name} has no "
                    "words now.")
    return put_part(abc, name, new_part), " ".join(s for s in (sing_note, said) if s)


# --------------------------------------------------------------------------------------------
# Replies


def _bars_phrase(count: int) -> str:
    return f"{'an' if count in (8, 11, 18) else 'a'} {count}-bar"


def describe_song(abc: str) -> str:
    """The song's form in a musician's words.

    >>> describe_song(shape_song(EXAMPLE, 2, 2))
    'a 2-bar verse and a 2-bar chorus, sung twice through (verse 1, chorus, verse 2, chorus)'
    >>> describe_song(EXAMPLE)
    ''
    """
    parts = {p.name: p for p in song_parts(abc)}
    if "verse" not in parts or "chorus" not in parts:
        return ""
    _, _, bars = _melody_bars(abc)
    verse, chorus = (_whole_bars(bars[p.bars[0] - 1:p.bars[1]]) for p in
                     (parts["verse"], parts["chorus"]))
    text = f"{_bars_phrase(verse)} verse and {_bars_phrase(chorus)} chorus"
    if _passes(abc) > 1:
        text += ", sung twice through (verse 1, chorus, verse 2, chorus)"
    return text


def words_note(words: SongWords) -> str:
    """The words of a new song as the reply gives them."""
    out = [f"Verse {n}: {quote_lines(lines)}." for n, lines in enumerate(words.verses, 1) if lines]
    if words.chorus:
        out.append(f"Chorus: {quote_lines(words.chorus)}.")
    return " ".join(out)


def words_answer(abc: str, question: str) -> str | None:
    """An answer to "what are the words of the chorus / the verse / the song?" for a song with
    parts; None for a tune without them."""
    if not song_parts(abc):
        return None
    asked = named_part(question)
    out = []
    if asked in (None, "verse"):
        out += [f"Verse {n}: {quote_lines(v.split(' / '))}."
                for n, v in enumerate(part_words(abc, "verse"), 1)]
    if asked in (None, "chorus"):
        out += [f"Chorus: {quote_lines(c.split(' / '))}." for c in part_words(abc, "chorus")]
    if not out:
        return f"The {asked or 'song'} has no words yet."
    return " ".join(out)


# --------------------------------------------------------------------------------------------
# Hooks for the conversation


def song_plan(bars: int | None, config: SongFormConfig = SongFormConfig()) -> Any:
    """The :class:`agent.decoding.FormPlan` of a new song: a verse and a chorus, each its own
    section (the decoder closes the verse with a cadence), 16 bars in all by default.

    >>> [part.bars for part in song_plan(16).parts], [part.bars for part in song_plan(None).parts]
    ([8, 8], [8, 8])
    """
    from agent.decoding import FormPlan, Part  # the decoder's plan type; imports nothing heavy

    total = bars if bars and bars >= 4 else 16
    verse = verse_bars_of(total, config)
    return FormPlan((Part(verse), Part(total - verse)))


def verse_bars_of(total: int, config: SongFormConfig = SongFormConfig()) -> int:
    """How many of ``total`` bars the verse takes: its share, rounded to whole 4-bar lines
    where the tune is long enough.

    >>> verse_bars_of(16), verse_bars_of(12), verse_bars_of(6)
    (8, 8, 3)
    """
    verse = round(total * config.verse_share)
    if total >= 8:
        verse = max(4, min(total - 4, 4 * round(verse / 4 + 0.01)))
    return max(1, min(total - 1, verse))


def takes_verse(abc: str) -> bool:
    """Whether "add a second verse" goes under a repeat here (:func:`add_song_verse`): a song
    with parts, or a tune with no repeat signs (one is added); either with words already (a
    tune without words gets its first verse the usual way).

    >>> takes_verse(EXAMPLE), takes_verse(EXAMPLE.replace("|]", "|]\\nw:la la la la\\n"))
    (False, True)
    """
    if not any(block_texts(abc, line) for line in note_slots(abc)):
        return False
    if song_parts(abc):
        return True
    _, tokens, _ = _melody_bars(abc)
    return not any(t.kind is Kind.BAR and ":" in t.text for t in tokens)


def verse_reply(words: SongWords, theme: str) -> str:
    """The reply to "add a second verse"."""
    lines = words.verses[-1] if words.verses else ()
    return (f"I added a second verse about {theme}, sung the second time through the repeat: "
            f"{quote_lines(lines)}. The notes are unchanged; the chorus words repeat after it.")
