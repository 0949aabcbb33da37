"""The nonlinear node scorer tried against the linear one: with no MLP it decodes as the
linear scorer does, training on a real tune moves it toward the musician's chords, and its
decoding keeps the final tonic."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent import harmony as H
from finetune import harmony_mlp as M
from finetune import harmony_train as T

REEL = Path(__file__).parent / "data" / "abc" / "nottingham_reel.abc"


def _prepared(neighbours: bool = False):
    """The reel's problem, its inputs and the linear tables under the shipped weights."""
    problem = T.tune_problem(REEL.read_text())
    names, labels = M.node_names([problem])
    index = {name: number for number, name in enumerate(H.hand_weights())}
    table = T.Compiled(problem[0], index)
    weights = H._weights(H.HarmonyConfig())
    vector = np.array([weights.get(name, 0.0) for name in sorted(index, key=index.get)])
    rows, moves = M._linear_tables(table, vector)
    x = M.node_inputs(problem[0], names, labels, neighbours)
    return problem, table, vector, x, rows, moves


def _log_likelihood(arrays, x, rows, moves, gold) -> float:
    import torch

    scale = float(arrays["scale"])
    extra = M.mlp_scores(arrays, np.concatenate(x))
    emit, start = [], 0
    for row in rows:
        emit.append(torch.from_numpy(scale * row + extra[start:start + len(row)]))
        start += len(row)
    trans = [None] + [torch.from_numpy(scale * m) for m in moves[1:]]
    sizes = [len(r) for r in rows]
    free = [np.ones(s, dtype=bool) for s in sizes]
    free[-1] = np.arange(sizes[-1]) == 0
    masks = M._masks(gold, sizes)
    masks[-1] &= free[-1]
    return float(M._forward(emit, trans, masks) - M._forward(emit, trans, free))


def test_without_an_mlp_it_decodes_as_the_linear_scorer():
    problem, table, vector, x, rows, moves = _prepared()
    zero = {"scale": np.array(1.0), "w0": np.zeros((1, x[0].shape[1])), "b0": np.zeros(1)}
    assert M.decode(x, rows, moves, zero) == table.best_path(vector)
    assert M.decode(x, rows, moves, zero) == H._best_path(problem[0],
                                                          H._weights(H.HarmonyConfig()))


@pytest.mark.parametrize("loss", ["crf", "hinge"])
def test_training_on_a_tune_moves_toward_its_chords_and_ends_on_the_tonic(loss):
    problem, _, _, x, rows, moves = _prepared()
    gold = problem[1]
    config = M.MlpConfig(hidden=(8,), loss=loss, epochs=10, rate=0.01)
    arrays = M.train_mlp([(x, rows, moves, gold)], x[0].shape[1], config)
    zero = {"scale": np.array(1.0), "w0": np.zeros((1, x[0].shape[1])), "b0": np.zeros(1)}
    assert _log_likelihood(arrays, x, rows, moves, gold) > _log_likelihood(
        zero, x, rows, moves, gold)

    def off(path):
        return sum(g is not None and s not in g for s, g in zip(path, gold))

    path = M.decode(x, rows, moves, arrays)
    assert off(path) <= off(M.decode(x, rows, moves, zero))
    assert path[-1] == 0 and len(path) == len(problem[0].plan)


def test_neighbour_inputs_hold_the_slots_around():
    problem, _, _, x, *_ = _prepared()
    wide = M.node_inputs(problem[0], *M.node_names([problem]), neighbours=True)
    assert [w.shape[1] for w in wide] == [a.shape[1] + 48 for a in x]
    assert not wide[0][:, -48:-24].any() and not wide[-1][:, -24:].any()
    assert np.allclose(wide[1][:, -48:-24], wide[1][0, -48:-24])  # the same for each chord
    assert wide[1][0, -48:-36].sum() == pytest.approx(1.0)  # slot 0's degree shares


def test_an_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="mlpW"):
        M.parse_variant("forest-crf")


def test_the_harmoniser_uses_the_network_and_keeps_the_linear_scorer_selectable():
    """By default the network's node scores join the linear ones; ``scorer="linear"`` gives
    the learned table's own Viterbi path; both keep the melody and end on the tonic."""
    abc = H.strip_chords(REEL.read_text())
    melody = H._read(abc)
    meter = melody.tune.meter
    lattice = H._lattice(melody.events, meter.bar_length, meter.beat_length, 2,
                         melody.pickups, melody.keys, ends=H.section_ends(melody.bars))
    linear = H._best_path(lattice, H._weights(H.HarmonyConfig()))
    chosen = H.harmonise_events(melody.events, "D", "major", meter.bar_length,
                                meter.beat_length, 2, H.HarmonyConfig(scorer="linear"),
                                skip=melody.pickups, ends=H.section_ends(melody.bars))
    firsts = [bar[0][1].name for bar in chosen if bar]
    assert firsts == [lattice.states[p][s][0].name
                      for p, s in enumerate(linear) if lattice.plan[p][1] == 0]
    for scorer in ("network", "linear"):
        result = H.harmonise(abc, H.HarmonyConfig(scorer=scorer))
        assert H.strip_chords(result.abc) == abc
        assert H.parse_chord(result.bars[-1].chords[-1][1]).name == "D"
    with pytest.raises(ValueError, match="scorer"):
        H.harmonise(abc, H.HarmonyConfig(scorer="forest"))


def test_a_chord_label_the_network_never_saw_gets_no_score():
    from agent import harmony_nodes as N

    melody = H._read("X:1\nM:3/4\nL:1/4\nK:Ddor\nDFA|GBd|cea|d3|]\n")
    lattice = H._lattice(melody.events, H.Fraction(3, 4), H.Fraction(1, 4), 1,
                         melody.pickups, melody.keys)
    assert all(label.startswith("dorian") for states in lattice.states for _, label in states)
    assert all(not row.any() for row in N.node_bonus(lattice))
