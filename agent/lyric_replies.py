"""Why words could not be written, said as a musician would say it.

The lyric writer (:mod:`agent.lyrics`, :mod:`agent.song_form`) reports what went wrong in the
checker's terms: ``"chorus: line 2: no usable line of 2-3 syllables among 42 proposed (5
syllables, the phrase has 3 notes)"``. That detail is worth keeping, but not as the first thing
a person reads. :func:`plain_reason` turns one such problem into plain words ("I couldn't find
words that fit the short second phrase of the chorus"), and :func:`refusal` builds the whole
reply: the plain sentence first, what happens next, and the checker's words last, in brackets.

The problem strings are the ones :mod:`agent.lyrics` and :mod:`agent.song_form` write (a part
prefix such as ``"verse 2: "`` or ``"chorus: "``, then ``"line N: "`` counting the phrases of
that part, then the detail); one this module does not know still gets a plain sentence.

>>> print(refusal(["chorus: line 2: no usable line of 2-3 syllables among 42 proposed"]))
I couldn't find words that fit the short second phrase of the chorus, so your score is as it was. Ask again and I'll try other words, or give me the words yourself. (Details: chorus: line 2: no usable line of 2-3 syllables among 42 proposed.)
"""
from __future__ import annotations

import re
from typing import Sequence

__all__ = ["KEPT", "NO_WORDS_YET", "plain_reason", "refusal", "unrhymed_note", "words_not_set"]

#: What a refused lyrics turn leaves, said after the reason.
KEPT = ", so your score is as it was. Ask again and I'll try other words, or give me the words yourself."
#: What a new tune whose words failed leaves, said after the reason.
NO_WORDS_YET = ", so the tune has no words yet. Ask again for another try, or give me the words yourself."

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth", "eleventh", "twelfth")
_PART = re.compile(r"^(?P<part>verse(?: (?P<number>\d+))?|chorus):\s*", re.IGNORECASE)
_LINE = re.compile(r"^line (?P<line>\d+):\s*")
_NO_LINE = re.compile(r"^no usable line (?:of (?P<low>\d+)-(?P<high>\d+) syllables|of words)")
_RHYME = re.compile(r"^'(?P<word>[^']+)' does not rhyme with '(?P<partner>[^']+)'")
_THEME = re.compile(r"^no (?:new )?line (?:in this stanza shows|names|uses a word of|is about)")
_MUSIC_LINE = re.compile(r"^music line (?P<line>\d+)(?:, verse (?P<verse>\d+))?: (?P<rest>.*)$")
_TOO_MANY = re.compile(r"^\d+ syllables for \d+ notes, and only")
_FIT = re.compile(r"syllables? for \d+ notes|no words to set|notes?\b")
#: a phrase of at most this many syllables is "short"; of at least LONG, "long"
SHORT, LONG = 4, 10


def _ordinal(number: int) -> str:
    return _ORDINALS[number - 1] if 0 < number <= len(_ORDINALS) else f"number {number}"


def _where(part: str | None, verse: str | None) -> str:
    """" of the chorus", " of the second verse", "" (no part named)."""
    if not part:
        return ""
    if part.lower() == "chorus":
        return " of the chorus"
    return f" of the {_ordinal(int(verse))} verse" if verse else " of the verse"


def plain_reason(problem: str) -> str:
    """One problem of the lyric writer in a musician's words, as a sentence without its stop.

    >>> print(plain_reason("line 3: no usable line of 4-6 syllables among 12 proposed (not plain words)"))
    I couldn't find words that fit the third phrase
    >>> print(plain_reason("verse 2: line 1: no usable line of 2-3 syllables among 42 proposed"))
    I couldn't find words that fit the short first phrase of the second verse
    >>> print(plain_reason("no line uses a word of the theme (sea, ocean)"))
    None of the lines I found were about the theme
    >>> print(plain_reason("line 2: 'day' does not rhyme with 'sea'"))
    I couldn't find a rhyme for the second line
    >>> print(plain_reason("chorus: line 4: 9 syllables for 7 notes: 2 too many"))
    The words I found for the fourth phrase of the chorus would not sit on its notes
    >>> print(plain_reason("something new went wrong"))
    I couldn't find words that fit the melody well enough
    """
    text = problem.strip()
    part = _PART.match(text)
    where = _where(part.group("part"), part.group("number")) if part else ""
    text = text[part.end():] if part else text
    line = _LINE.match(text)
    number = int(line.group("line")) if line else None
    text = text[line.end():] if line else text
    nth = f"{_ordinal(number)} " if number else ""
    no_line = _NO_LINE.match(text)
    if no_line and number:
        size = ""
        if no_line.group("high") and int(no_line.group("high")) <= SHORT:
            size = "short "
        elif no_line.group("low") and int(no_line.group("low")) >= LONG:
            size = "long "
        return f"I couldn't find words that fit the {size}{nth}phrase{where}"
    if _RHYME.match(text):
        return f"I couldn't find a rhyme for the {nth}line{where}".replace("the line", "a line")
    if _THEME.match(text):
        return f"None of the lines I found{where.replace(' of', ' for')} were about the theme"
    if number and _FIT.search(text):
        return f"The words I found for the {nth}phrase{where} would not sit on its notes"
    return f"I couldn't find words that fit the melody{where} well enough"


def refusal(problems: Sequence[str], then: str = KEPT, what: str = "") -> str:
    """The reply when words could not be written: the first problem in plain words, ``then``
    (what the person has now: :data:`KEPT` or :data:`NO_WORDS_YET`), and the checker's words
    for the first two problems last. ``what`` ("write a second verse that fits") words a
    problem this module does not know.

    >>> print(refusal(["line 1: no usable line of 4-6 syllables among 1 proposed (not plain words)"],
    ...               NO_WORDS_YET))  # doctest: +NORMALIZE_WHITESPACE
    I couldn't find words that fit the first phrase, so the tune has no words yet. Ask again for
    another try, or give me the words yourself. (Details: line 1: no usable line of 4-6 syllables
    among 1 proposed (not plain words).)
    >>> print(refusal(["the model stopped"], what="write a second verse that fits"))  # doctest: +ELLIPSIS
    I couldn't write a second verse that fits well enough, so your score is as it was. ...
    >>> refusal([])
    "I couldn't find words that fit the melody well enough, so your score is as it was. Ask again and I'll try other words, or give me the words yourself."
    """
    shown = [p.strip() for p in problems if p and p.strip()][:2]
    first = plain_reason(shown[0]) if shown else plain_reason("")
    if what and first == plain_reason(""):
        first = f"I couldn't {what} well enough"
    details = f" (Details: {'; '.join(shown)}.)" if shown else ""
    return first + then + details


def unrhymed_note(misses: Sequence[str]) -> str:
    """A sentence for a reply that keeps words whose rhymes are not all there, naming the
    words that miss ('' when none), with a space before it.

    >>> print(unrhymed_note(["line 4: 'day' does not rhyme with 'sea'",
    ...                      "line 8: 'home' does not rhyme with 'moon'"]))
     Not every pair rhymes: “day” and “sea”, “home” and “moon” do not. Ask again for another try or change a line.
    >>> print(unrhymed_note(["line 2: a rhyme went missing"]))
     Not every pair rhymes. Ask again for another try or change a line.
    >>> unrhymed_note([])
    ''
    """
    if not misses:
        return ""
    pairs = []
    for miss in misses:
        found = _RHYME.match(_LINE.sub("", _PART.sub("", miss.strip())))
        if found:
            pairs.append(f"“{found.group('word')}” and “{found.group('partner')}”")
    named = f": {', '.join(pairs[:2])} do not" if pairs else ""
    return f" Not every pair rhymes{named}. Ask again for another try or change a line."


def words_not_set(problems: Sequence[str]) -> str:
    """Why the person's own words could not be set, plain words first and the checker's words
    last in brackets (the chat says "I could not do that: ..." before it).

    >>> print(words_not_set(["music line 2: 8 syllables for 3 notes, and only 1 note(s) could be split"]))
    your words for the second line of the tune have more syllables than it has notes, even with notes split; send fewer words for it (details: music line 2: 8 syllables for 3 notes, and only 1 note(s) could be split)
    >>> print(words_not_set(["no words given"]))
    no words given
    """
    shown = [p.strip() for p in problems if p and p.strip()][:2]
    if not shown:
        return "those words cannot be set to this melody"
    found = _MUSIC_LINE.match(shown[0])
    if not found:
        return "; ".join(shown)  # already said in words ("a number (1984): write it as words")
    nth = _ordinal(int(found.group("line")))
    verse = f" (verse {found.group('verse')})" if found.group("verse") else ""
    if _TOO_MANY.match(found.group("rest")):
        plain = (f"your words for the {nth} line of the tune{verse} have more syllables than it "
                 "has notes, even with notes split; send fewer words for it")
    else:
        plain = f"your words for the {nth} line of the tune{verse} would not sit on its notes"
    return f"{plain} (details: {'; '.join(shown)})"
