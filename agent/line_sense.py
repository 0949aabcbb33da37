"""Does a proposed lyric line stand on its own, in words a song written today would use?

The lyric writer (:mod:`agent.lyrics`) chooses among lines a small model proposes, and the model
learnt its lyrics from public-domain poetry and prose: many of its lines are fragments cut from a
longer sentence ("To whom I would give the moon", "And eke out life in the land where"), two
half-sentences run together ("Not quite. The sun and moon have played."), or old diction
("cometh", "wouldst", "alas"). A sung line is heard alone, so such lines are refused or ranked
low. The rules are about how a line begins and ends and about its word forms; they read the
text only (no model), so they are cheap enough to run on every candidate.

- :func:`sense_problems`: what makes a line unusable (it ends on a word that needs more words
  after it: "the", "and", "my"...; 9 of the 16,632 lyric lines the model was trained on,
  so it catches the model's own cut-offs rather than the poets').
- :func:`sense_score`: 0 for a line that reads as a whole, lower for signs of a fragment
  (a sentence break inside the line, a line that opens with "which" or "to whom", one that ends
  on a preposition that wants its object or on a colon): 7.2% of the training lyric lines.
- :func:`old_forms`: old verb forms (-eth, -st, "know not") and old words beyond
  ``agent.lyrics.OLD_WORDS``: 0.7% more of the training lyric lines (122 lines).

>>> sense_problems("The leaves are falling on the")
("ends on 'the', which needs more words after it",)
>>> sense_problems("The leaves are falling down")
()
>>> sense_score("Not quite. The sun and moon have played.")
-0.5
>>> old_forms("The wind cometh and thou wouldst go")
['cometh', 'wouldst']
"""
from __future__ import annotations

import re

__all__ = ["DANGLING_END", "OLD_FORMS", "old_forms", "sense_problems", "sense_score"]

#: Words a line cannot end on and still be heard as whole: articles, possessives, conjunctions.
DANGLING_END = frozenset(
    "a an the my your our their its and or but nor because than if whose thy".split())
#: Words that at a line's end usually want what comes next (a preposition's object, a clause):
#: allowed ("the one I'm dreaming of"), but ranked lower.
_WEAK_END = frozenset("of from with into upon onto toward towards where which whom when while as "
                      "though although unless until whether".split())
#: Openings that make the line a piece of a longer sentence ("Which ...", "To whom ...").
_FRAGMENT_START = re.compile(
    r"^(?:which|whom|whose|wherein|whereof|whereby|(?:to|of|in|from|by|for|with|at|on) "
    r"(?:which|whom|whose))\b", re.IGNORECASE)
# A sentence ends inside the line and another starts ("Not quite. The sun ...").
_INNER_BREAK = re.compile(r"[.?;:]\s+[A-Za-z]")  # "Oh! Susanna" is sung
#: Old words not in ``agent.lyrics.OLD_WORDS`` that the model's verse is full of.
OLD_FORMS = frozenset(
    "eke aye alas alack thyself whence wert hark anon 'gainst 'mid amidst e'en 'twill ope "
    "canst wouldst couldst shouldst didst hadst mayst mightst knowest saith".split())
# -eth verb forms ("cometh", "loveth"); words that merely end so are left alone.
_ETH = re.compile(r"^[a-z]{2,}[^ai]eth$")
_NOT_ETH = frozenset("teeth seth macbeth elizabeth nazareth japheth".split())
# A verb negated by "not" alone ("I know not", "fear not"), as old verse does; today "don't".
_VERB_NOT = re.compile(
    r"\b(?:know|knew|fear|care|see|saw|love|loved|go|went|come|came|weep|wept|sleep|slept|need|"
    r"want|heed|say|said|think|thought|seek|sought|speak|spoke|find|found|feel|felt|look|doubt|"
    r"grieve|mourn|forget|forgot|leave|left|stay|stayed)\s+not\b", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:['\u2019][a-z]+)?", text.lower().replace("\u2019", "'"))


def sense_problems(text: str) -> tuple[str, ...]:
    """Why the line cannot be sung on its own (empty when it can): it ends on a word that needs
    more words after it.

    >>> sense_problems("And eke out life so well in the land and")
    ("ends on 'and', which needs more words after it",)
    >>> sense_problems("Over the hills and far away")
    ()
    """
    words = _words(text)
    if not words:
        return ()
    if words[-1] in DANGLING_END:
        return (f"ends on {words[-1]!r}, which needs more words after it",)
    return ()


def sense_score(text: str) -> float:
    """0 for a line that reads as a whole; half a point off for each sign of a fragment: a
    sentence break inside the line (a full stop, question mark, semicolon or colon before more
    words), an opening such as "which" or "to whom", an ending on a preposition, a word that
    starts a clause or a colon (it leads into words that are not there).

    >>> sense_score("The moon is riding high")
    0.0
    >>> sense_score("To whom I would give the moon")
    -0.5
    >>> sense_score("The land where")
    -0.5
    >>> sense_score("From which star to sail:")
    -1.0
    """
    words = _words(text)
    if not words:
        return 0.0
    score = 0.0 - 0.5 * len(_INNER_BREAK.findall(text.rstrip()))
    if _FRAGMENT_START.match(text.strip().lstrip("\"'\u201C(")):
        score -= 0.5
    if words[-1] in _WEAK_END or text.rstrip().endswith(":"):
        score -= 0.5
    return score


def old_forms(text: str) -> list[str]:
    """Old word forms in the line, in order: -eth verbs, thou-forms ("wouldst"), the old
    words of :data:`OLD_FORMS`, then a verb negated by "not" alone ("know not").

    >>> old_forms("Alas, she loveth the sea")
    ['alas', 'loveth']
    >>> old_forms("So they now know not the reality")
    ['know not']
    >>> old_forms("Between my teeth the wind; I could not go")
    []
    """
    found = [w for w in _words(text)
             if w in OLD_FORMS or (_ETH.match(w) and w not in _NOT_ETH)]
    found += [m.lower() for m in _VERB_NOT.findall(text)]
    return list(dict.fromkeys(found))
