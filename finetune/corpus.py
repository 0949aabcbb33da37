"""Real tunes for training: read from music21's bundled corpus, normalised, and described.

Each tune of the corpus tunebooks (Ryan's Mammoth Collection, O'Neill's, the Essen folk songs,
Aird's airs, ...) is read with the app's ABC reader and written back with the app's ABC writer,
with the unit length the model writes in (``L:1/8``) and a header built by
:func:`agent.prompts.abc_header`. Only tunes that then validate clean are kept; the others are
counted by reason. Each kept tune gets its attributes: key and mode, meter, tempo, style, bars,
range, form, lyrics, title, and its melody fingerprints.

>>> meter_of("C|"), meter_of("C"), meter_of("6/8"), meter_of("none")
('2/2', '4/4', '6/8', None)
>>> [tonic_and_mode(value) for value in ("Ador", "E Minor", "Bb", "F#m")]
[('A', 'dorian'), ('E', 'minor'), ('Bb', 'major'), ('F#', 'minor')]
>>> key_field("A", "dorian"), key_field("E", "minor"), key_field("Bb", "major")
('Ador', 'Em', 'Bb')
>>> tonic_and_mode("Hp")
Traceback (most recent call last):
...
ValueError: not a key this builder uses: 'Hp'
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from agent.abc_text import length_in_bars, parse_key, parse_tune
from agent.notation import MODE_SUFFIX, MODES, NOTE_HEAD_RE, TONIC_RE, mode_name
from agent.prompts import abc_header
from finetune.fingerprint import melody_fingerprint, melody_notes, score_bar_fingerprints
from agent.styles import style_for, usual_tempo

# Tunebooks of music21's corpus, relative to its folder; multi-voice part-books are left out.
TUNEBOOK_FOLDERS = ("airdsAirs", "essenFolksong", "miscFolk", "nottingham-dataset", "oneills1850",
                    "ryansMammoth")
SKIPPED_BOOKS = ("essenFolksong/test", "essenFolksong/variant0")  # test files, variant listings

# The modes the builder keeps (locrian tunes are too few to learn from).
BUILDER_MODES = frozenset(MODES) - {"locrian"}


@dataclass(frozen=True)
class RawTune:
    """One tune as it stands in a corpus tunebook."""

    tune_id: str  # "<book path>#<X number>", unique and stable across builds
    source: str  # the tunebook's path inside music21's corpus folder
    text: str


class Rejected(Exception):
    """A tune the builder does not keep; ``reason`` is a short category for the counts."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def corpus_dir() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def tunebook_paths(root: Path | None = None) -> list[Path]:
    """The ABC tunebooks used, sorted."""
    root = root or corpus_dir()
    paths = []
    for folder in TUNEBOOK_FOLDERS:
        for path in sorted((root / folder).glob("*.abc")):
            relative = path.relative_to(root).as_posix()
            if not relative.startswith(SKIPPED_BOOKS):
                paths.append(path)
    return paths


def split_book(text: str) -> list[tuple[str, str]]:
    """(X number, tune text) for each tune of a tunebook, by the app's tunebook splitter (the
    file header is copied in front of each tune).

    >>> split_book("M:6/8\\nX:1\\nT:a\\nK:C\\nC|\\n\\nX:2\\nT:b\\nK:G\\nG|\\n")[1]
    ('2', 'M:6/8\\nX:2\\nT:b\\nK:G\\nG|')
    """
    from agent.abc_text import split_tunebook

    return [(_x_number(tune, index), tune.strip())
            for index, tune in enumerate(split_tunebook(text), 1)]


def _x_number(text: str, fallback: int) -> str:
    match = re.search(r"(?m)^X:\s*(\d+)", text)
    if match is None:
        return str(fallback)
    return match.group(1).lstrip("0") or "0"


def raw_tunes(root: Path | None = None) -> list[RawTune]:
    """Every tune of the corpus tunebooks, in book order; ids made unique within a book."""
    root = root or corpus_dir()
    tunes = []
    for path in tunebook_paths(root):
        source = path.relative_to(root).as_posix()
        seen: dict[str, int] = {}
        for number, text in split_book(path.read_text(encoding="latin-1")):
            seen[number] = seen.get(number, 0) + 1
            suffix = "" if seen[number] == 1 else f".{seen[number]}"
            tunes.append(RawTune(f"{source}#{number}{suffix}", source, text))
    return tunes


def header_fields(text: str) -> dict[str, str]:
    """The first value of each header field (before the body), whitespace trimmed."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z]):(.*)", line)
        if not match:
            if fields.get("K") is not None:
                break
            continue
        name, value = match.group(1), match.group(2).split("%")[0].strip()
        fields.setdefault(name, value)
        if name == "K":
            break
    return fields


def meter_of(value: str) -> str | None:
    """The meter as the builder writes it ("C" is 4/4, "C|" is 2/2); None for free meter."""
    value = value.strip()
    if value == "C":
        return "4/4"
    if value == "C|":
        return "2/2"
    return value if re.fullmatch(r"\d+/\d+", value) else None


def tonic_and_mode(value: str) -> tuple[str, str]:
    """(tonic, mode) of a ``K:`` value, for the keys the builder uses: a tonic, then a mode
    word or nothing (major); ValueError for anything else. :func:`agent.abc_text.parse_key`
    reads every ``K:`` value; this one also says which tunes the builder keeps."""
    match = TONIC_RE.fullmatch(value.lstrip())
    mode_word = re.match(r"\s*([A-Za-z]*)", match.group(3)).group(1).lower() if match else ""
    mode = mode_name(mode_word) if mode_word else "major"
    if match is None or mode not in BUILDER_MODES:
        raise ValueError(f"not a key this builder uses: {value!r}")
    return match.group(1).upper() + match.group(2), mode


def key_field(tonic: str, mode: str) -> str:
    """The ``K:`` value for a tonic and mode."""
    return tonic + MODE_SUFFIX[mode]


def title_of(fields: dict[str, str]) -> str:
    """A tidy title: trailing dots and " -- Reel" style suffixes removed, ", The" moved to the front.

    >>> title_of({"T": "Silver Spear, The -- Reel."})
    'The Silver Spear'
    """
    title = re.sub(r"\s+", " ", fields.get("T", "")).strip().strip(".").strip()
    title = re.sub(r"\s+--\s+.*$", "", title)
    match = re.fullmatch(r"(.*), (The|A|An)", title)
    if match:
        title = f"{match.group(2)} {match.group(1)}"
    title = title.replace("%", "").strip()
    return title or "Untitled"


def tempo_of(q_value: str, meter: str, style: Any) -> tuple[str, bool]:
    """(Q: value as 'beat=bpm', whether it came from the tune) — else the style's usual tempo."""
    match = re.match(r"\s*(\d+/\d+)\s*=\s*(\d+)", q_value or "")
    if match and 20 <= int(match.group(2)) <= 320:
        return f"{match.group(1)}={match.group(2)}", True
    return usual_tempo(style, meter), False


def quarter_bpm(tempo: str) -> int:
    """Quarter notes per minute of a Q: value like '3/8=116'.

    >>> quarter_bpm("3/8=116"), quarter_bpm("1/2=100")
    (174, 200)
    """
    beat, bpm = tempo.split("=")
    return round(int(bpm) * Fraction(beat) / Fraction(1, 4))


def fingerprint_key(text: str) -> str:
    """A short content hash, for cache files."""
    return hashlib.sha1(text.encode()).hexdigest()[:20]


# --- normalisation -----------------------------------------------------------------------------

def read_and_write(raw_text: str) -> tuple[Any, str]:
    """The music21 score of a tune as read by the app's reader, and its canonical text."""
    from agent.abc_reader import read_tune
    from agent.abc_writer import write_abc
    from agent.errors import AbcError

    try:
        score = read_tune(raw_text).score
        return score, write_abc(score, unit_length=Fraction(1, 8))
    except AbcError as exc:
        raise Rejected("cannot be read or written", str(exc)) from None
    except Exception as exc:  # music21 raises many kinds on bad input
        raise Rejected("cannot be read or written", f"{type(exc).__name__}: {exc}") from None


def validate_problems(abc: str, music21: bool = True) -> list[str]:
    """The codes of the errors the app's validator finds in ``abc`` (empty when it is valid).

    ``music21=False`` leaves out the validator's music21 reading (a third of the cost of a
    tune): the builder uses it for text it has just written from a score music21 read.

    >>> validate_problems("X:1\\nT:t\\nM:3/4\\nL:1/4\\nK:G\\nG A B|c2 B A|G3|]\\n")
    ['bar-length']
    """
    from agent.validate import ValidateSettings, validate_abc

    report = validate_abc(abc, ValidateSettings(music21=music21))
    if report.valid:
        return []
    return [d.code for d in report.diagnostics if d.severity == "error"] or ["invalid"]


# --- attributes --------------------------------------------------------------------------------

def split_header(abc: str) -> tuple[str, str]:
    """(header through the K: line, body) of one tune.

    >>> split_header("X:1\\nT:a\\nK:D\\nABc|\\n")
    ('X:1\\nT:a\\nK:D\\n', 'ABc|\\n')
    """
    match = re.search(r"(?m)^K:.*\n?", abc)
    if not match:
        raise ValueError("no K: line")
    return abc[:match.end()], abc[match.end():]


def infer_mode(tonic: str, mode: str, explicit: bool, final_midi: int) -> tuple[str, str]:
    """The tonic and mode, reading a bare major ``K:`` by the final note when it ends on the
    signature's 6th or 2nd degree (minor, dorian); the signature is kept. (A tune ending on the
    5th is as often a major tune ending on the dominant as a mixolydian one, so it stays major.)

    >>> infer_mode("G", "major", False, 64)   # K:G ending on E
    ('E', 'minor')
    >>> infer_mode("G", "major", True, 64)    # K:Gmaj says so
    ('G', 'major')
    >>> infer_mode("D", "major", False, 69)   # K:D ending on A
    ('D', 'major')
    """
    from music21 import key

    if explicit or mode != "major":
        return tonic, mode
    scale = key.Key(tonic.replace("b", "-"))
    for degree, new_mode in ((6, "minor"), (2, "dorian")):
        pitch = scale.pitchFromDegree(degree)
        if pitch.pitchClass == final_midi % 12:
            return pitch.name.replace("-", "b"), new_mode
    return tonic, mode


PART_END = re.compile(r":\|\]?\d*|::|\|\||\|\]|\|:")


def form_of(body: str) -> tuple[int, str]:
    """(number of parts, form letters) from the bar lines: a part ends at ``:|``, ``::``, ``||``,
    ``|]`` or a ``|:`` that opens the next; a repeated part counts twice in the form. A stretch
    of less than two bars (a pickup, a second ending) belongs to the part before it.

    >>> form_of("|:abc|def|abc|def:|\\n|:ABC|DEF|ABC|DEF:|\\n")
    (2, 'AABB')
    >>> form_of("abc|def|\\nabc|def||\\n")
    (1, 'A')
    """
    music = "\n".join(line for line in body.splitlines() if not re.match(r"[A-Za-z]:", line))
    parts: list[bool] = []  # whether each part is repeated
    position = 0
    for match in PART_END.finditer(music):
        segment, position = music[position:match.start()], match.end()
        repeated = match.group(0).startswith(":")
        if not NOTE_HEAD_RE.search(segment) or (parts and segment.count("|") < 1):
            if parts:
                parts[-1] = parts[-1] or repeated
            continue
        parts.append(repeated)
    tail = music[position:]
    if NOTE_HEAD_RE.search(tail) and (not parts or tail.count("|") >= 1):
        parts.append(False)
    parts = parts or [False]
    letters = "".join(chr(ord("A") + min(i, 25)) * (2 if rep else 1) for i, rep in enumerate(parts))
    return len(parts), letters


def _signature(tonic: str, mode: str) -> tuple[int, ...]:
    return parse_key(key_field(tonic, mode)).alterations


def _title_case(title: str) -> str:
    return title.title() if title.isupper() else title


def describe(abc: str, score: Any, *, title: str, rhythm: str, q_value: str,
             key_value: str) -> tuple[str, dict]:
    """The canonical text of a normalised tune (header from :func:`agent.prompts.abc_header`)
    and its attributes. ``score`` is the tune as read (notes and bars are taken from it);
    ``key_value`` is the ``K:`` field as the tune was written (its mode word, which a writer
    working from the key signature cannot know). Raises :class:`Rejected`."""
    from music21 import pitch

    fields = header_fields(abc)
    meter = meter_of(fields.get("M", ""))
    if meter is None:
        raise Rejected("free or unusual meter", fields.get("M", ""))
    try:
        tonic, mode = tonic_and_mode(key_value)
        written = tonic_and_mode(fields.get("K", ""))
    except ValueError:
        raise Rejected("key not used", key_value) from None
    if _signature(tonic, mode) != _signature(*written):
        raise Rejected("key signature changed in writing", f"{key_value} -> {fields.get('K')}")
    explicit_mode = bool(TONIC_RE.fullmatch(key_value.lstrip()).group(3).strip())
    _, body = split_header(abc)
    if re.search(r"(?m)^\s*[KLMV]:|\[[KLMV]:", body):
        raise Rejected("key, meter or voice changes inside the tune")
    notes = melody_notes(score)
    if len(notes) < 8:
        raise Rejected("fewer than 8 notes")
    tonic, mode = infer_mode(tonic, mode, explicit_mode, notes[-1][0])
    style = style_for(rhythm=rhythm, title=title, meter=meter)
    tempo, tempo_given = tempo_of(q_value, meter, style)
    try:
        header = abc_header(title=title, meter=meter, tempo=tempo, key=key_field(tonic, mode),
                            style=style.name if style else None)
    except ValueError as exc:
        raise Rejected("header", str(exc)) from None
    canonical = header + body.strip("\n") + "\n"
    problems = validate_problems(canonical, music21=False)
    if problems:
        raise Rejected(f"does not validate ({problems[0]})", ", ".join(sorted(set(problems))))
    parts, form = form_of(body)
    low, high = min(n[0] for n in notes), max(n[0] for n in notes)
    lyrics = [line[2:].strip() for line in body.splitlines() if line.startswith("w:")]
    attributes = {
        "title": title, "tonic": tonic, "mode": mode, "key": key_field(tonic, mode),
        "mode_from": "K:" if mode == tonic_and_mode(key_value)[1] else "final note",
        "meter": meter, "tempo": tempo, "tempo_bpm": quarter_bpm(tempo),
        "tempo_from": "Q:" if tempo_given else "style", "style": style.name if style else None,
        "bars": length_in_bars(parse_tune(canonical)), "parts": parts, "form": form, "notes": len(notes),
        "range": {"low": pitch.Pitch(midi=low).nameWithOctave, "high": pitch.Pitch(midi=high).nameWithOctave,
                  "semitones": high - low},
        "lyrics": "\n".join(lyrics) or None,
    }
    return canonical, {"attributes": attributes, "fingerprint": melody_fingerprint(notes),
                       "bar_fingerprints": score_bar_fingerprints(score)}


def rhythm_of(text: str) -> str:
    """The ``R:`` field, else "air" when the notes or tempo text ask for a slow tune.

    >>> rhythm_of('X:1\\nT:a\\nN:"Very slow"\\nK:G\\nGAB|\\n')
    'air'
    """
    fields = header_fields(text)
    if fields.get("R"):
        return fields["R"]
    remarks = " ".join(re.findall(r"(?m)^[NQ]:(.*)$", text.split("\nK:")[0]))
    return "air" if re.search(r"\bslow", remarks, re.IGNORECASE) else ""


def analyse_tune(raw: RawTune) -> dict:
    """One corpus tune normalised and described: a JSON-ready record, or ``{"rejected": reason}``."""
    fields = header_fields(raw.text)
    try:
        if re.search(r"(?m)^V:", raw.text):
            raise Rejected("several voices")
        score, normal = read_and_write(raw.text)
        canonical, found = describe(
            normal, score, title=_title_case(title_of(fields)), rhythm=rhythm_of(raw.text),
            q_value=fields.get("Q", ""), key_value=fields.get("K", ""))
    except Rejected as exc:
        return {"id": raw.tune_id, "rejected": exc.reason, "detail": exc.detail[:200]}
    return {"id": raw.tune_id, "source": raw.source, "abc": canonical, **found}
