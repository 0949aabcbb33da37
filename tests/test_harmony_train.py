"""The harmoniser's trained chord scorer: training moves the weights toward a musician's
chords on a real tune, both decodings keep the guarantees, the learned table is used."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent import harmony as H
from agent.harmony_weights import WEIGHTS
from finetune import harmony_train as T

DATA = Path(__file__).parent / "data"
REEL = DATA / "abc" / "nottingham_reel.abc"


def _problem(abc: str, groups: frozenset[str] | None = None):
    melody = H._read(H.strip_chords(abc))
    meter = melody.tune.meter
    lattice = H._lattice(melody.events, meter.bar_length, meter.beat_length, 2,
                         melody.pickups, melody.keys, groups,
                         ends=H.section_ends(melody.bars))
    if groups is None:
        return lattice, T.gold_states(lattice, H.chords_in(abc))
    return lattice, T.gold_states(lattice, H.chords_in(abc)), T.bar_roots(
        lattice, H.chords_in(abc))


def _corpus_reels() -> list[str]:
    """The two chord-bearing Nottingham reels music21 ships (Cuckoo's Nest, Little Czech
    Number)."""
    from music21 import corpus

    from agent.abc_text import split_tunebook

    path = corpus.getWork("nottingham-dataset/reelsa-c.abc")
    return split_tunebook(Path(path).read_text(encoding="latin-1"))


def _agreement(lattice, gold, path) -> float:
    """Share of the slots with a known musician's chord whose root the path matches."""
    known = [(i, g) for i, g in enumerate(gold) if g is not None]
    return sum(lattice.states[i][path[i]][0].root in {lattice.states[i][s][0].root for s in g}
               for i, g in known) / len(known)


def test_crf_training_moves_toward_the_musicians_chords():
    """A few CRF epochs on one real tune raise the likelihood of its chords, and the share of
    slots whose root agrees with them does not fall."""
    lattice, gold = _problem(REEL.read_text())
    hand = H.hand_weights()

    def log_likelihood(weights):
        _, log_z = T.expected_features(lattice, weights)
        _, log_gold = T.expected_features(lattice, weights, gold)
        return log_gold - log_z

    learned = {**hand, **T.train_crf([(lattice, gold)], T.TrainConfig(epochs=4, rate=0.1),
                                     progress=False)}
    assert log_likelihood(learned) > log_likelihood(hand) + 1.0
    assert _agreement(lattice, gold, H._marginal_path(lattice, learned)) >= _agreement(
        lattice, gold, H._marginal_path(lattice, hand))


def test_perceptron_training_fits_the_musicians_chords():
    lattice, gold = _problem(REEL.read_text())
    hand = H.hand_weights()
    learned = {**hand, **T.train([(lattice, gold)], T.TrainConfig(epochs=5, rate=0.05),
                                 progress=False)}
    before = _agreement(lattice, gold, H._best_path(lattice, hand))
    after = _agreement(lattice, gold, H._best_path(lattice, learned))
    assert after > before


def test_the_learned_table_is_used_and_differs_from_the_hand_set_one():
    hand = H.hand_weights()
    assert len(WEIGHTS) > 100
    assert any(abs(WEIGHTS[name] - hand.get(name, 0.0)) > 0.05 for name in WEIGHTS)
    assert H._weights(H.HarmonyConfig())["ct"] == WEIGHTS.get("ct", hand["ct"])
    only_hand = H._weights(H.HarmonyConfig(weights=()))
    assert only_hand == hand


@pytest.mark.parametrize("decoding", ["marginal", "viterbi"])
def test_both_decodings_keep_the_guarantees(decoding):
    abc = H.strip_chords(REEL.read_text())
    result = H.harmonise(abc, H.HarmonyConfig(decoding=decoding))
    assert H.strip_chords(result.abc) == abc
    names = [name for bar in result.bars for _, name in bar.chords]
    assert H.parse_chord(names[-1]).name == "D" and len(set(names)) > 2
    melody = H._read(abc)
    gap = 0
    for index, bar in enumerate(H.chords_in(result.abc)):
        if index not in melody.pickups:  # an upbeat goes without
            gap = 0 if bar.chords else gap + 1
            assert gap < 2


def test_gold_leaves_unknown_chords_free():
    """A chord outside the key's vocabulary (F# major in C) leaves its slot free."""
    abc = 'X:1\nM:2/4\nL:1/8\nK:C\n"C"CEGE|"F#"^FA^ce|"G7"GBdf|"C"c4|]\n'
    lattice, gold = _problem(abc)
    labels = {}
    for (bar, _), states, allowed in zip(lattice.plan, lattice.states, gold):
        labels.setdefault(bar, []).append(
            None if allowed is None else sorted(states[s][1] for s in allowed))
    assert labels[0] == [["major:0M"]] * len(labels[0])
    assert labels[1] == [None] * len(labels[1])  # F# major is no chord of C major
    assert labels[2][0] == ["major:47"] and labels[3][-1] == ["major:0M"]


def test_the_compiled_decoder_finds_the_scorers_own_paths():
    """The numpy decoder training uses gives the harmoniser's Viterbi path, free and held to
    the musician's chords, with the learned and the hand-set weights."""
    lattice, gold = _problem(REEL.read_text())
    index = {name: number for number, name in enumerate(H.hand_weights())}
    compiled = T.Compiled(lattice, index)
    for weights in (H._weights(H.HarmonyConfig()), H.hand_weights()):
        vector = np.array([weights.get(name, 0.0) for name in sorted(index, key=index.get)])
        assert compiled.best_path(vector) == H._best_path(lattice, weights)
        assert compiled.best_path(vector, gold) == H._best_path(lattice, weights, gold)


def test_a_masked_feature_group_is_as_if_absent():
    """Cross-validation builds lattices with every group once and masks out the groups a
    variant leaves out: the folds' numbers equal those of lattices built without them."""
    tunes = _corpus_reels()
    with_context = [_problem(abc, frozenset({"context", "stay"})) for abc in tunes]
    without = [_problem(abc, frozenset()) for abc in tunes]
    config = T.TrainConfig(epochs=2, rate=0.05)
    masked = T.cross_validate(with_context, config, 2, groups=frozenset())
    assert masked == T.cross_validate(without, config, 2)
    assert sum(b for _, b in masked) > 20


def test_feature_groups_add_their_features_and_unknown_ones_are_refused():
    lattice = _problem(REEL.read_text(), frozenset({"context", "meter", "stay"}))[0]
    names = {name for rows in lattice.emissions for features in rows for name in features}
    assert any(n.startswith("nextdeg") for n in names) and any(n.startswith("meter") for n in names)
    assert any(name.startswith("stay") for row in lattice.change_table(1) for cell in row
               for name in cell)
    with pytest.raises(ValueError, match="unknown feature groups"):
        _problem(REEL.read_text(), frozenset({"harmonic_rhythm"}))


def test_the_pair_viterbi_finds_the_best_second_order_path():
    """On small random chains, the Viterbi over pairs scores as high as trying every path."""
    import itertools

    rng = np.random.default_rng(1)
    for _ in range(100):
        sizes = rng.integers(1, 4, rng.integers(1, 6))
        n = len(sizes)
        emit = [rng.normal(size=s) for s in sizes]
        moves = [None] + [rng.normal(size=(sizes[p - 1], sizes[p])) for p in range(1, n)]
        triples = [None, None] + [rng.normal(size=tuple(sizes[p - 2:p + 1])) for p in range(2, n)]

        def score(path):
            return (sum(emit[p][path[p]] for p in range(n))
                    + sum(moves[p][path[p - 1], path[p]] for p in range(1, n))
                    + sum(triples[p][path[p - 2], path[p - 1], path[p]] for p in range(2, n)))

        best = max(itertools.product(*(range(s) for s in sizes)), key=score)
        assert score(H.pair_viterbi(emit, moves, triples)) == pytest.approx(score(best))


def test_second_order_groups_decode_as_the_scorer_and_reduce_to_first_order():
    """With the second-order groups at weight 0 the path is the first-order one; with random
    weights on every group the compiled decoder finds the scorer's own path (free and held to
    the musician's chords) and counts the same features along it."""
    every = frozenset(H.FEATURE_GROUPS_ALL)
    lattice, gold = _problem(REEL.read_text(), every)[:2]
    first = _problem(REEL.read_text(), every - H.SECOND_ORDER)[0]
    weights = H._weights(H.HarmonyConfig())
    assert lattice.second_order and not first.second_order
    assert H._best_path(lattice, weights) == H._best_path(first, weights)
    index = {name: number for number, name in enumerate(H.hand_weights())}
    compiled = T.Compiled(lattice, index)
    assert any(name.startswith("tri:") for name in index)
    rng = np.random.default_rng(0)
    vector = rng.normal(size=len(index))
    random_weights = {name: float(vector[number]) for name, number in index.items()}
    path = compiled.best_path(vector)
    assert path == H._best_path(lattice, random_weights)
    assert compiled.best_path(vector, gold) == H._best_path(lattice, random_weights, gold)
    numbers, values = compiled.path_entries(path)
    assert float((vector[numbers] * values).sum()) == pytest.approx(
        H._dot(random_weights, H._path_features(lattice, path)))
    with pytest.raises(ValueError, match="Viterbi only"):
        H._marginal_path(lattice, weights)


def test_the_new_groups_add_their_features_and_mask_by_name():
    lattice = _problem(REEL.read_text(), frozenset({"bar", "cadence", "ahead"}))[0]
    names = {name for rows in lattice.emissions for features in rows for name in features}
    for prefix in ("bdeg", "barct", "endbar:", "end:", "preend:", "next2deg", "prev2deg"):
        assert any(n.startswith(prefix) for n in names), prefix
    index = {name: number for number, name in enumerate(sorted(names | {"tri:a>b>c", "m2:5>5"}))}
    mask = T.group_mask(index, frozenset({"context"}))
    kept = {name for name, number in index.items() if mask[number]}
    assert not any(n.startswith(("bdeg", "barct", "end", "preend", "next2deg", "prev2deg",
                                 "tri:", "m2:")) for n in kept)
    assert any(n.startswith("deg") for n in kept)


@pytest.mark.parametrize("options", [{"margin": 1.0}, {"bar_starts_only": True},
                                     {"bag": (0, 1)}])
def test_training_options_still_fit_the_musicians_chords(options):
    """The loss-augmented perceptron, the bar-start-only one and a bag of two each move the
    weights toward a real tune's chords."""
    lattice, gold, roots = _problem(REEL.read_text(), frozenset({"context"}))
    hand = H.hand_weights()
    config = T.TrainConfig(epochs=5, rate=0.05, **options)
    learned = {**hand, **T.train_bagged([(lattice, gold, roots)], config, progress=False)}
    before = _agreement(lattice, gold, H._best_path(lattice, hand))
    assert _agreement(lattice, gold, H._best_path(lattice, learned)) > before


def test_a_bag_averages_its_runs():
    problem = _problem(REEL.read_text(), frozenset({"context"}))
    config = T.TrainConfig(epochs=2, rate=0.05)
    runs = [T.train([problem], T.TrainConfig(epochs=2, rate=0.05, seed=s), progress=False)
            for s in (0, 1)]
    bagged = T.train_bagged([problem], T.TrainConfig(epochs=2, rate=0.05, bag=(0, 1)),
                            progress=False)
    hand = H.hand_weights()
    name = next(iter(runs[0]))
    assert bagged[name] == pytest.approx(
        (runs[0][name] + runs[1].get(name, hand.get(name, 0.0))) / 2)
    assert T.train_bagged([problem], config, progress=False) == runs[0]


def test_extra_tunes_join_every_training_fold_and_are_never_measured():
    """Cross-validation with extra tunes after the measured ones: each fold measures the same
    bars as without them (the extras are never held out), and the extras change what is
    learned."""
    tunes = _corpus_reels()
    main = [_problem(abc, frozenset({"context"})) for abc in tunes]
    extra = [_problem(REEL.read_text(), frozenset({"context"}))]
    config = T.TrainConfig(epochs=2, rate=0.05)
    alone = T.cross_validate(main, config, 2)
    joined = T.cross_validate(main + extra, config, 2, measured=len(main))
    assert [bars for _, bars in joined] == [bars for _, bars in alone]
    assert sum(bars for _, bars in alone) > 20
    everything = T.cross_validate(main + extra, config, 2)
    assert sum(b for _, b in everything) > sum(b for _, b in joined)


def test_extra_tunes_that_repeat_a_main_tune_are_dropped(tmp_path):
    """An extra file holding a main tune transposed under another title, the same tune under
    its title written another way, a new tune twice and a tune without chords: only the
    new tune is kept, once, and the counts say why the others went."""
    from agent.edits import transpose
    from agent.ops import Transpose

    reel = REEL.read_text()
    main = tmp_path / "main.abc"
    main.write_text(reel)
    moved = transpose(reel, Transpose(semitones=2)).abc.replace("T:Cuckoo's Nest",
                                                                 "T:Nest of the Cuckoo")
    new = _corpus_reels()[1]
    bare = DATA.joinpath("abc", "oneills_darby_the_driver.abc").read_text()
    renamed = reel.replace("T:Cuckoo's Nest", "T:The Cuckoo's Nest")
    extra = tmp_path / "extra.abc"
    extra.write_text("\n\n".join([moved, renamed, new, new, bare]) + "\n")
    problems, counts = T.extra_problems(T.TrainConfig(abc=(str(main),),
                                                      extra_abc=(str(extra),)))
    assert counts == {"read": 5, "title": 1, "melody": 1, "repeat": 1, "no chords": 1,
                      "refused": 0, "kept": 1}
    assert len(problems) == 1 and any(root is not None for root in problems[0][2])
