"""The body automaton, the token sampler and the grammar they share (no model needed).

Bodies are produced by walking the automaton with a seeded random choice among the characters
it accepts, then read back with :mod:`agent.abc_text` (an independent reader): every bar must
hold exactly its meter, the bar count and the bar lines must follow the plan.
"""
from __future__ import annotations

import dataclasses
import random
from fractions import Fraction

import pytest
import torch

from agent.abc_text import Kind, parse_tune, split_bars, tokenize_body
from agent.validate import validate_abc
from finetune.metrics import bar_count
from agent.decoding import (
    BODY_CHARS,
    ORNAMENT_MARKS,
    DecodingError,
    FormPlan,
    Literal,
    Part,
    RepetitionRules,
    body_spec,
    grammar_rules,
    normalize_bar,
    start_state,
)
from agent.sampler import SamplingSettings, TokenTable, choose_token

METERS = ["3/4", "6/8", "4/4", "5/4", "9/8", "2/4", "12/8", "C|"]
PLANS = {
    "through-8": FormPlan.through(8),
    "AABB-4": FormPlan.dance(4),
    "endings": FormPlan((Part(6, repeat=True, ending_bars=2), Part(4))),
}
ALPHABET = sorted(BODY_CHARS)
# Weights that make random bodies look a little like music: mostly notes, some spaces.
WEIGHTS = {c: 6 for c in "ABCDEFGabcdefg"} | {" ": 3, "|": 3}


def random_body(spec, rng: random.Random, relax: bool = True) -> str:
    """Walk the automaton to a complete body, one accepted character at a time."""
    state, text = start_state(spec), ""
    while not state.is_complete:
        options = [c for c in ALPHABET if state.feed(c) is not None]
        if not options:
            assert relax and state.repetition_on, f"dead end after {text!r}"
            state = state.relaxed()
            continue
        ch = rng.choices(options, [WEIGHTS.get(c, 1) for c in options])[0]
        state, text = state.feed(ch), text + ch
        assert len(text) < 4000, "the body never ends"
    return text


def read_bars(meter: str, body: str):
    tune = parse_tune(f"X:1\nT:t\nM:{meter}\nL:1/8\nK:C\n{body}\n")
    tokens = tokenize_body(tune.body, tune)
    return tune, tokens, split_bars(tokens, tune)


@pytest.mark.parametrize("plan_name", list(PLANS))
@pytest.mark.parametrize("meter", METERS)
def test_random_bodies_have_full_bars(meter, plan_name):
    plan = PLANS[plan_name]
    rng = random.Random(f"{meter}-{plan_name}")
    for _ in range(4):
        body = random_body(body_spec(meter, "1/8", plan), rng)
        tune, tokens, bars = read_bars(meter, body)
        assert not [t for t in tokens if t.kind is Kind.UNKNOWN], body
        assert len(bars) == plan.total_bars, body
        assert all(bar.duration == bar.expected for bar in bars), body
        assert body.count("\n") >= plan.total_bars // plan.bars_per_line - 1


def test_plan_bar_lines_are_written():
    rng = random.Random(3)
    body = random_body(body_spec("6/8", "1/8", PLANS["endings"]), rng)
    tune, tokens, bars = read_bars("6/8", body)
    assert [b.ending for b in bars] == [None] * 4 + ["1"] * 2 + ["2"] * 2 + [None] * 4
    assert bars[5].ends_repeat and not bars[7].ends_repeat
    assert body.rstrip().endswith("|]")
    dance = random_body(body_spec("4/4", "1/8", FormPlan.dance(4)), rng)
    assert dance.count(":|") == 2 and "|:" in dance


def test_a_pickup_is_not_a_plan_bar_and_the_last_bar_completes_it():
    rng = random.Random(5)
    spec = body_spec("3/4", "1/8", FormPlan.through(6), allow_pickup=True)
    state = start_state(spec).feed("A | ")
    assert state is not None and state.bars_done == 0  # the pickup is not bar 1 of the plan
    body = "A | " + random_body_from(state, rng)
    _, _, bars = read_bars("3/4", body)
    assert len(bars) == 7  # pickup, five full bars, the short last bar: six bars of music
    assert bars[0].duration == Fraction(1, 8) and bars[-1].duration == Fraction(5, 8)
    assert all(b.duration == Fraction(3, 4) for b in bars[1:-1])
    abc = f"X:1\nT:t\nM:3/4\nL:1/8\nK:C\n{body}\n"
    assert validate_abc(abc).valid and bar_count(abc) == 6
    assert start_state(body_spec("3/4", "1/8", FormPlan.through(6))).feed("A |") is None
    assert start_state(spec).feed("A- |") is None  # no tie out of a pickup


@pytest.mark.parametrize("meter", ["6/8", "4/4", "3/4", "9/8"])
def test_every_section_of_a_dance_tune_repeats_the_pickup(meter):
    """A tune that opens with a pickup opens each part with one as long, and closes each part
    with the bar that completes it; one that opens with a full bar has no pickup anywhere."""
    spec = body_spec(meter, "1/8", FormPlan.dance(4), allow_pickup=True)
    with_pickup = 0
    for seed in range(8):
        prefix = ["", "D | ", "DE |", "D2 | "][seed % 4]
        body = prefix + random_body_from(start_state(spec).feed(prefix), random.Random(seed))
        abc = f"X:1\nT:t\nM:{meter}\nL:1/8\nK:C\n{body}\n"
        tune, _, bars = read_bars(meter, body)
        full = bars[1].expected
        assert validate_abc(abc).valid, (body, validate_abc(abc).diagnostics)
        assert bar_count(abc) == 8
        assert (bars[0].duration < full) == bool(prefix)
        if prefix:
            with_pickup += 1
            pickup = bars[0].duration
            assert len(bars) == 10
            opening_second = next(i for i, b in enumerate(bars) if i and b.opening is not None
                                  and b.opening.text.endswith(":") and i > 1)
            assert bars[opening_second].duration == pickup
            for closing in (opening_second - 1, len(bars) - 1):
                assert bars[closing].duration == full - pickup
        else:
            assert len(bars) == 8 and all(b.duration == full for b in bars)
    assert with_pickup == 6


def random_body_from(state, rng: random.Random) -> str:
    text = ""
    while not state.is_complete:
        options = [c for c in ALPHABET if state.feed(c) is not None]
        ch = rng.choices(options, [WEIGHTS.get(c, 1) for c in options])[0]
        state, text = state.feed(ch), text + ch
    return text


@pytest.mark.parametrize(
    "text, viable",
    [
        ("A2 B2 C2 |", True),
        ("A2 B2 C2 D", False),  # the bar is full: only its bar line may follow
        ("A2 B2 |", False),  # the bar is not full
        ("(3ABC A2 B2 |", True),  # a triplet of eighths lasts a quarter
        ("(3AB2", False),  # tuplet notes share one length
        ("A>B C2 D2 |", True),
        ("(3ABC>D", False),  # no broken rhythm out of a tuplet
        ('"Am"A2 "E7"B2 C2 |', True),
        ('"Xq"A', False),  # not a chord symbol
        ("[CEG]2 [DF]4 |", True),
        ("[C]2", False),  # a chord has two notes at least
        ("^c2-^c2 d2 |", True),
        ("^c2-c2", False),  # a tie's partner spells the pitch it sounds with
        ("^c2 c2 c2- | c", False),  # ...also over the bar line: c is c sharp here
        ("^c2 c2 c2- | ^c", True),
        ("A2  B2", False),  # one space between groups
        ("A2 B2 C2 | D6 |]", True),
        ("A2 B2 C2 | D6 |] A", False),  # nothing after the end
        ("A2 B2 C2 | D6 ||", False),  # the plan ends with |]
        ("A2 B2 C2 | D6-|]", False),  # no tie out of the last bar
        ("A2 [K:G]", False),
        ("A2 é", False),
        ("c'''", False),  # at most two octave marks
        ("C,2 c'2 z2 |", True),
    ],
)
def test_automaton_accepts_and_rejects(text, viable):
    spec = body_spec("3/4", "1/8", FormPlan.through(2))
    assert (start_state(spec).feed(text) is not None) == viable


def test_must_close_bar_and_completion():
    spec = body_spec("2/4", "1/8", FormPlan.through(2))
    state = start_state(spec).feed("A2 B")  # B may still become B2 or B/2
    assert not state.must_close_bar and state.remaining == 4
    state = state.feed("2")
    assert state.feed(" ").must_close_bar
    assert not state.is_complete
    done = state.feed(" | c4 |]")
    assert done.is_complete and done.bars_done == 2
    assert done.feed("\n").is_complete


def test_repetition_rules():
    spec = body_spec("2/4", "1/8", FormPlan.through(8, bars_per_line=8))
    state = start_state(spec).feed("A4 | A4 | ")
    assert state.feed("A4 |") is None  # a third A4 in a row
    assert state.feed("A2 B2 |") is not None
    state = start_state(spec).feed("A4 | B4 | c4 | A4 | ")
    assert state.feed("B4 |") is None  # "A4 B4" again: a copied pair of bars
    assert state.feed("B2 A2 |") is not None
    off = body_spec("2/4", "1/8", FormPlan.through(8, bars_per_line=8),
                    repetition=RepetitionRules(0, 0, 0, 0))
    assert start_state(off).feed("A4 | A4 | A4 | A4 |") is not None


def test_note_level_rules():
    spec = body_spec("2/4", "1/8", FormPlan.through(4))
    state = start_state(spec).feed("A A A A | ")
    assert state.feed("A ") is None and state.feed("A2") is None  # a fifth A in a row
    assert state.feed("A") is not None  # it may still become A, (another pitch)
    assert state.feed("A, ") is not None and state.feed("B ") is not None
    assert start_state(spec).feed("A A A A- | A") is not None  # a tie's second note is free
    assert start_state(spec).feed("A- A B- B") is None  # one tie per bar


def test_repetition_never_blocks_the_last_way_out():
    # A tie forces the next note; the automaton checks the repetition rules before a bar fills,
    # so every reachable state still has a way on.
    spec = body_spec("2/4", "1/8", FormPlan.through(8))
    rng = random.Random(11)
    for _ in range(20):
        assert random_body(spec, rng, relax=False)


def test_normalize_bar():
    assert normalize_bar(" A2 B \n") == "A2B"


# ---- tokens -------------------------------------------------------------------------------


def small_table() -> TokenTable:
    texts = ["<|im_end|>", "A", "B2", " |", "|", " ", "\n", "é", "hello", "c", "2", "|]", "(3",
             "4"]
    return TokenTable(texts, special_ids=[0])


def test_token_table_keeps_only_body_tokens():
    table = small_table()
    assert table.texts[0] is None  # special
    assert table.texts[7] is None and table.texts[8] is None  # non-ASCII, not ABC
    assert table.texts[1] == "A" and 1 in table.musical and 3 not in table.musical
    assert table.trie["B"]["2"][None] == [2] and table.trie["|"][None] == [4]
    assert "h" not in table.trie and "é" not in table.trie


def test_choose_token_widens_when_the_top_candidates_do_not_fit():
    table = small_table()
    spec = body_spec("2/4", "1/8", FormPlan.through(2))
    state = start_state(spec).feed("A2 B2")  # full: only a bar line may follow
    scores = torch.full((table.size,), -5.0)
    scores[[0, 7, 8, 9]] = torch.tensor([9.0, 8.0, 7.0, 6.0])  # end of turn, é, hello, c: none fit
    scores[3] = -4.0
    choice = choose_token(scores, state, table, SamplingSettings(temperature=0.0, top_k=4))
    assert choice.token_id == 3 and choice.widened == 1
    assert choice.state.bars_done == 1


def test_refused_mass_is_the_probability_the_grammar_took_away():
    table = small_table()
    state = start_state(body_spec("2/4", "1/8", FormPlan.through(2))).feed("A2 B2")
    scores = torch.full((table.size,), -30.0)
    scores[9], scores[3] = 0.0, 0.0  # "c" (refused: the bar is full) and the bar line, equally
    choice = choose_token(scores, state, table, SamplingSettings(temperature=1.0, top_k=4))
    assert choice.token_id == 3 and choice.refused_mass == pytest.approx(0.5, abs=1e-6)
    scores[9] = -30.0
    assert choose_token(scores, state, table, SamplingSettings(temperature=1.0, top_k=4)
                        ).refused_mass == pytest.approx(0.0, abs=1e-6)


def test_a_slur_crosses_one_bar_line_at_most_and_does_not_nest():
    spec = body_spec("3/4", "1/8", FormPlan.through(4))
    start = start_state(spec)
    assert start.feed("A2 B2 (c2 | d2 e2 f2) |") is not None
    assert start.feed("A2 B2 (c2 | d2 e2 f2 |") is None  # it must close before a second
    assert start.feed("A2 ((B2 c2) |") is None
    assert start.feed("(A2 B2) (c2 | d2) (e2 f2) |") is not None
    unlimited = start_state(dataclasses.replace(spec, slur_bars=0))
    assert unlimited.feed("A2 B2 (c2 | d2 e2 f2 | (g2 (a4) |") is not None
    # a span that must close a slur it inherits gets one bar line to do it
    span = start_state(dataclasses.replace(spec, slurs_in=1))
    assert span.feed("A2 B2 c2 | d2) e2 f2 |") is not None
    assert span.feed("A2 B2 c2 | d2 e2 f2 |") is None


def test_choose_token_is_seeded():
    table = small_table()
    spec = body_spec("2/4", "1/8", FormPlan.through(2))
    state = start_state(spec)
    scores = torch.zeros(table.size)
    settings = SamplingSettings(temperature=1.0, top_k=10, top_p=1.0)

    def draws(seed):
        gen = torch.Generator().manual_seed(seed)
        return [choose_token(scores, state, table, settings, gen).token_id for _ in range(20)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)
    assert {table.texts[t] for t in draws(3)} <= {"A", "B2", "c", "(3"}



def test_a_guessed_token_leaves_every_tokens_probability_as_it_was():
    """Speculative sampling with a guess: the guess is taken with its probability, else a draw
    among the others, so over many draws the frequencies match the sampler's own, whatever
    the guess (a likely one, an unlikely one, one the grammar refuses)."""
    table = small_table()
    state = start_state(body_spec("2/4", "1/8", FormPlan.through(2)))
    scores = torch.full((table.size,), -30.0)
    scores[[1, 2, 9, 12]] = torch.tensor([1.0, 0.5, 0.0, -1.0])  # A, B2, c, (3: all viable here
    settings = SamplingSettings(temperature=1.0, top_k=10, top_p=1.0)
    expected = torch.softmax(scores[[1, 2, 9, 12]].double(), dim=0).tolist()
    for guess in (None, 1, 12, 11):  # none, the likeliest, the least likely, "|]" (refused)
        generator = torch.Generator().manual_seed(5)
        counts = dict.fromkeys((1, 2, 9, 12), 0)
        for _ in range(6000):
            counts[choose_token(scores, state, table, settings, generator, guess).token_id] += 1
        for token, probability in zip(counts, expected):
            assert counts[token] / 6000 == pytest.approx(probability, abs=0.02), (guess, counts)
    greedy = SamplingSettings(temperature=0.0, top_k=10)
    assert choose_token(scores, state, table, greedy, None, 9).token_id == 1  # greedy ignores it


def test_a_lazy_choice_draws_as_the_full_one_and_sinks_with_the_refused_mass():
    """One automaton run a step: the tokens keep the full choice's frequencies, and ``sank``
    comes with the refused mass's frequency (a refused "|]", "hello" and the end token carry
    some; one score sits outside the top_k), independently of the token."""
    table = small_table()
    state = start_state(body_spec("2/4", "1/8", FormPlan.through(2)))
    scores = torch.full((table.size,), -30.0)
    scores[[1, 2, 9, 12, 11, 8, 0, 13]] = torch.tensor([1.0, 0.5, 0.0, -1.0, 0.2, -0.5, -0.3, -0.8])
    settings = SamplingSettings(temperature=1.0, top_k=7, top_p=1.0)
    full = choose_token(scores, state, table, settings, torch.Generator().manual_seed(1))
    viable = [1, 2, 9, 12]  # "(3" is viable but not among the top 7: never drawn
    assert not full.widened
    expected = torch.softmax(scores[viable[:3]].double(), dim=0).tolist() + [0.0]
    generator = torch.Generator().manual_seed(5)
    draws = 12000
    counts = dict.fromkeys(viable, 0)
    sank = dict.fromkeys(viable, 0)
    for _ in range(draws):
        choice = choose_token(scores, state, table, settings, generator, lazy=True)
        counts[choice.token_id] += 1
        sank[choice.token_id] += choice.sank
    for token, probability in zip(viable, expected):
        assert counts[token] / draws == pytest.approx(probability, abs=0.015), counts
    for token in viable[:3]:
        assert sank[token] / counts[token] == pytest.approx(full.refused_mass, abs=0.03), (sank, counts)
    assert 0.2 < full.refused_mass < 0.5
    assert sum(sank.values()) / draws == pytest.approx(full.refused_mass, abs=0.015)


# ---- the grammar as data -------------------------------------------------------------------


def recognizes(rules, text: str) -> bool:
    """A memoized recursive-descent recognizer for :func:`grammar_rules` (no left recursion)."""
    memo: dict = {}

    def ends(symbol, pos):
        if isinstance(symbol, Literal):
            return {pos + len(symbol.text)} if text.startswith(symbol.text, pos) else set()
        key = (symbol, pos)
        if key not in memo:
            memo[key] = set()
            found = set()
            for alternative in rules[symbol]:
                positions = {pos}
                for item in alternative:
                    positions = {e for p in positions for e in ends(item, p)}
                    if not positions:
                        break
                found |= positions
            memo[key] = found
        return memo[key]

    return len(text) in ends("root", 0)


@pytest.mark.parametrize("meter", ["3/4", "6/8", "5/4"])
def test_grammar_accepts_what_the_automaton_writes(meter):
    spec = body_spec(meter, "1/8", FormPlan.dance(2))
    rules = grammar_rules(spec)
    rng = random.Random(meter)
    for _ in range(3):
        assert recognizes(rules, random_body(spec, rng))
    assert not recognizes(rules, "A2 B2 |")  # short bar, unfinished tune


def test_grammar_rejects_an_overfull_bar():
    rules = grammar_rules(body_spec("2/4", "1/8", FormPlan.through(1)))
    assert recognizes(rules, "A2 B2 |]")
    assert not recognizes(rules, "A2 B2 c |]")


def test_range_limit_keeps_single_notes_within_the_span():
    spec = body_spec("4/4", "1/8", FormPlan.through(2), max_range_steps=7)
    state = start_state(spec).feed("C2 c2 ")
    assert state is not None  # C to c: an octave, 7 steps
    assert state.feed("d") is None  # c..C plus d is 8 steps
    assert state.feed("B,") is None
    assert state.feed("G2 E2 |") is not None
    high = start_state(spec).feed("c2 c'2 ")
    assert high.feed("C") is None  # a capital letter can only go lower: never back in range
    low = start_state(spec).feed("C,2 C,,2 ")
    assert low.feed("C") is not None  # "C," would fit ...
    assert low.feed("C2") is None  # ... but C itself does not
    assert low.feed("C,2") is not None
    assert start_state(body_spec("4/4", "1/8", FormPlan.through(1))).feed("C,,2 c'2 C,,2 c'2 |")


def test_an_instruments_range_bounds_every_note_and_chord_note():
    """A flute plays middle C to c'' (MIDI 60..96): notes and chord notes outside are refused
    as soon as no octave mark can bring them back."""
    from agent.compose import _instrument_steps

    steps = _instrument_steps(parse_tune("X:1\n%%MIDI program 73\nM:3/4\nK:D\n"))
    spec = body_spec("3/4", "1/8", FormPlan.through(2), pitch_steps=steps)
    start = start_state(spec)
    assert start.feed("C2 c2 b'2 |") is not None and start.feed("c''") is None  # C sharp in D
    assert start.feed("d''") is None and start.feed("B,") is None
    assert start.feed("[ce']2") is not None and start.feed("[ce''") is None
    assert start.feed("[C,") is None
    assert start_state(body_spec("3/4", "1/8", FormPlan.through(2))).feed("[ce'']2 d''4 |")
    assert validate_abc("X:1\n%%MIDI program 73\nM:3/4\nL:1/8\nK:D\nC2 c2 b'2 |]\n").valid


def test_at_most_two_decorations_in_a_bar():
    spec = body_spec("4/4", "1/8", FormPlan.through(2))
    state = start_state(spec).feed(".C .D !trill!E")
    assert state is None
    state = start_state(spec).feed(".C !trill!D E F G4 |")
    assert state is not None and state.feed(".A") is not None  # a new bar starts a new count
    assert start_state(spec).feed(".C .D .E") is None
    free = dataclasses.replace(body_spec("4/4", "1/8", FormPlan.through(1)), max_decorations_per_bar=0)
    assert start_state(free).feed(".C .D .E .F G4 |") is not None


def test_a_rest_takes_no_ornament():
    spec = body_spec("4/4", "1/8", FormPlan.through(2), decorations=ORNAMENT_MARKS)
    for before in ("!trill!", ".", "!accent!", "{g}", "!mordent!"):
        assert start_state(spec).feed(before + "z") is None, before
        assert start_state(spec).feed(before + "A2 z2 A4 |") is not None, before
    for before in ("!fermata!", '"G"', '"Em"!fermata!'):
        assert start_state(spec).feed(before + "z2 A2 A4 |") is not None, before
    assert start_state(spec).feed("!fermata!.A2 z2 A4 |") is not None
    assert start_state(spec).feed("!fermata!.!trill!A2") is None  # two decorations at most


def test_decorations_are_limited_to_the_spec():
    ornaments = body_spec("4/4", "1/8", FormPlan.through(2), decorations=ORNAMENT_MARKS)
    everything = body_spec("4/4", "1/8", FormPlan.through(2))
    for mark in ("!upbow!", "!f!"):
        assert start_state(ornaments).feed(mark + "A") is None
        assert start_state(everything).feed(mark + "A") is not None
    assert start_state(ornaments).feed("!trill!A2 !fermata!B2") is not None
    with pytest.raises(DecodingError, match="unknown decorations"):
        body_spec("4/4", "1/8", decorations=frozenset({"wiggle"}))


def test_a_tune_keeps_to_its_budget_of_ornaments():
    """Two trills in the first bar are within 1 + 0.25 a bar begun; a third in the second bar
    is not, from its opening ``!`` (no dead end); one more later on is; 0 lifts the budget."""
    spec = body_spec("6/8", "1/8", FormPlan.through(4))
    start = start_state(spec)
    two = start.feed("!trill!A2B !trill!c2d |")
    assert two is not None
    assert two.feed("!trill!") is None and two.feed("!tr") is None
    assert two.feed("!f!A") is not None  # a dynamic is not an ornament
    later = start.feed("!trill!A2B c2d | A2B c2d | A2B c2d | ")
    assert later.feed("!trill!A") is not None
    free = start_state(dataclasses.replace(spec, ornaments_per_bar=0))
    assert free.feed("!trill!A2B !trill!c2d | !trill!A2B") is not None
