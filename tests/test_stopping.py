"""The early-stopping rules on constructed rung tables: plain numbers, no training, no Optuna.

Losses are (validation error, energy per inference in J[, latency in ms]), all minimised. The
expected orders and ranks below were worked out by hand from the rule in
``greenml.search._stopping``'s docstring; the working is in each test's comment.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest

from greenml.errors import ConfigError
from greenml.search._stopping import (
    MOASHA,
    STOPPING_RULES,
    NoStopping,
    RungEntry,
    StoppingRule,
    dominated_at_best_error,
    dominates,
    parse_rule,
    rule_label,
    rung_order,
    stopping_rule,
)


def entries(*losses: tuple[float, ...]) -> list[RungEntry]:
    """Trial i gets the i-th loss tuple."""
    return [RungEntry(trial, tuple(loss)) for trial, loss in enumerate(losses)]


def chain(n: int) -> list[RungEntry]:
    """n trials each dominating the next: trial i is ranked i + 1, one trial per front."""
    return [RungEntry(i, (0.1 + 0.05 * i, (1 + i) * 1e-5)) for i in range(n)]


# --- rungs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eta", "min_epochs", "epochs", "expected"),
    [
        (3, 1, 1, ()),
        (3, 1, 2, (1,)),
        (3, 1, 27, (1, 3, 9)),  # 27 is the last epoch: the trial completes there
        (3, 1, 28, (1, 3, 9, 27)),
        (3, 2, 30, (2, 6, 18)),
        (2, 2, 20, (2, 4, 8, 16)),
        (4, 1, 100, (1, 4, 16, 64)),
        (2.5, 1, 30, (1, 3, 6, 16)),  # 1, 2.5 -> 3 (halves up), 6.25 -> 6, 15.6 -> 16, 39
        (1.5, 1, 10, (1, 2, 3, 5, 8)),  # 1, 1.5 -> 2, 2.25 -> 2 (dropped), 3.4 -> 3, 5.1 -> 5, 7.6 -> 8
    ],
)
def test_ladder(eta: float, min_epochs: int, epochs: int, expected: tuple[int, ...]) -> None:
    assert MOASHA(reduction_factor=eta, min_epochs=min_epochs).rungs(epochs) == expected


def test_explicit_rungs_replace_the_ladder() -> None:
    rule = MOASHA(reduction_factor=3, min_epochs=4, rungs=(2, 5, 10))
    assert rule.rungs(10) == (2, 5)
    assert rule.rungs(11) == (2, 5, 10)
    assert rule.rungs(2) == ()


# --- ranking at a rung ---------------------------------------------------------------------------


def test_dominated_trial_stops_and_front_trial_goes_on() -> None:
    rule = MOASHA(reduction_factor=3)
    table = entries((0.10, 2e-5), (0.20, 1e-5), (0.15, 3e-5), (0.25, 2.5e-5))
    # Fronts: {0, 1}, {2, 3} (0 dominates 2, 1 dominates 3), then (0.30, 4e-5), which every
    # trial dominates: last of 5, and the best ⌈5/3⌉ = 2 go on.
    worst = rule.decide(3, RungEntry(9, (0.30, 4e-5)), table)
    assert worst.stop
    assert (worst.rank, worst.entries, worst.keep, worst.front) == (5, 5, 2, 3)
    assert worst.reason == (
        "stopped at epoch 3: ranked 5 of 5 trials at this rung (Pareto front 3); "
        "the best 2 (1/η with η=3, rounded up) go on"
    )
    # (0.05, 1e-5) dominates every trial: first.
    best = rule.decide(3, RungEntry(9, (0.05, 1e-5)), table)
    assert not best.stop
    assert (best.rank, best.front) == (1, 1)
    assert best.reason.startswith("goes on after epoch 3: ranked 1 of 5 trials")


@pytest.mark.parametrize(
    ("eta", "n", "keep"),
    [
        (3, 1, 1),
        (3, 2, 1),
        (3, 3, 1),
        (3, 4, 2),
        (3, 6, 2),
        (3, 7, 3),
        (3, 9, 3),
        (3, 10, 4),
        (2, 2, 1),
        (2, 3, 2),
        (2, 5, 3),
        (4, 8, 2),
        (4, 9, 3),
        (2.5, 3, 2),
        (2.5, 5, 2),
        (2.5, 6, 3),
        (1.5, 3, 2),  # 3/1.5 is 2 exactly; a last-bit error must not make it 3
        (1.4, 21, 15),  # 21/1.4 = 15.000000000000002 in floating point
    ],
)
def test_the_best_ceil_n_over_eta_go_on(eta: float, n: int, keep: int) -> None:
    rule = MOASHA(reduction_factor=eta)
    assert rule.keep(n) == keep
    table = chain(n)
    for position in range(n):
        decision = rule.decide(1, table[position], table)
        assert decision.rank == position + 1
        assert decision.keep == keep
        assert decision.stop == (position >= keep), (eta, n, position)


def test_first_arrivals_are_not_stopped_for_arriving_first() -> None:
    rule = MOASHA(reduction_factor=3)
    # The first trial at a rung goes on, however bad: nothing ranks above it.
    alone = rule.decide(1, RungEntry(0, (0.99, 1.0)), [])
    assert not alone.stop
    assert alone.reason.startswith("goes on after epoch 1: ranked 1 of 1 trial at this rung")
    # With fewer than η trials at the rung the best of them still goes on ...
    assert not rule.decide(1, RungEntry(1, (0.10, 1e-5)), entries((0.20, 2e-5))).stop
    # ... and a trial is stopped only when another trial there ranks above it.
    assert rule.decide(1, RungEntry(1, (0.30, 3e-5)), entries((0.20, 2e-5))).stop


def test_epsilon_net_decides_inside_a_front() -> None:
    # One front of four (error falls as energy rises). Min-max over the front, (error, energy):
    #   t0 (0, 1)   t1 (0.3, 0.3)   t2 (0.55, 0.2)   t3 (1, 0)
    # Seed: lowest error, t0. Farthest from t0: t3 (√2, against 0.76 and 0.97).
    # Then the larger distance to the nearer of {t0, t3}: t1 min(0.76, 0.76) = 0.76 beats
    # t2 min(0.97, 0.49) = 0.49. So t0, t3, t1, t2.
    front = entries((0.10, 11e-5), (0.16, 4e-5), (0.21, 3e-5), (0.30, 1e-5))
    assert rung_order(front) == (0, 3, 1, 2)
    # Unnormalised, energy (~1e-5) would not count and the third pick would be t2, the error
    # nearest the middle; taking the front in trial order would give (0, 1, 2, 3).
    rule = MOASHA(reduction_factor=2, keep_front=False)  # the best ⌈4/2⌉ = 2 go on
    verdicts = {e.trial: rule.decide(9, e, front) for e in front}
    assert {t: d.front for t, d in verdicts.items()} == {0: 1, 1: 1, 2: 1, 3: 1}
    assert {t: d.rank for t, d in verdicts.items()} == {0: 1, 1: 3, 2: 4, 3: 2}
    assert [t for t, d in verdicts.items() if not d.stop] == [0, 3]


def test_normalisation_is_over_the_front_not_the_rung() -> None:
    # Front t0..t3 plus t4, a diverged trial (error 0.9) dominated by t2. Over the front:
    #   t0 (0, 1)   t1 (0.1, 0.5)   t2 (0.5, 0.35)   t3 (1, 0)
    # t0, then t3; then t2 min(0.82, 0.61) = 0.61 beats t1 min(0.51, 1.03) = 0.51.
    # Normalised over the whole rung, t4 would squash the error axis to an eighth and t1
    # (min(0.500, 0.513)) would beat t2 (min(0.65, 0.36)).
    table = entries((0.10, 11e-5), (0.11, 6e-5), (0.15, 4.5e-5), (0.20, 1e-5), (0.90, 6e-5))
    assert rung_order(table) == (0, 3, 2, 1, 4)


def test_equal_losses_go_to_the_lower_trial_number() -> None:
    same = (0.1, 1e-5)
    assert rung_order([RungEntry(5, same), RungEntry(2, same)]) == (2, 5)
    rule = MOASHA(reduction_factor=2, keep_front=False)
    assert not rule.decide(1, RungEntry(2, same), [RungEntry(5, same)]).stop
    assert rule.decide(1, RungEntry(5, same), [RungEntry(2, same)]).stop
    # Equal losses do not dominate each other: with the front kept, both go on.
    assert not MOASHA(reduction_factor=2).decide(1, RungEntry(5, same), [RungEntry(2, same)]).stop


# --- keep_front: the first front is never stopped --------------------------------------------------


def test_keep_front_is_the_default() -> None:
    assert MOASHA().keep_front is True


def test_a_cheaper_less_accurate_trial_goes_on_with_the_front_kept() -> None:
    # The benchmark's failure: the second trial at a rung is cheaper but less accurate than the
    # first. Both are on front 1; ⌈2/3⌉ = 1 goes on, and the ε-net puts the lower error first.
    first = entries((0.10, 3e-5))
    cheaper = RungEntry(1, (0.30, 1e-5))
    published = MOASHA(keep_front=False).decide(1, cheaper, first)
    assert published.stop and (published.rank, published.keep, published.front) == (2, 1, 1)
    kept = MOASHA().decide(1, cheaper, first)
    assert not kept.stop
    assert (kept.rank, kept.keep, kept.front) == (2, 1, 1)
    assert kept.reason == (
        "goes on after epoch 1: no trial at this rung dominates it (ranked 2 of 2 trials at this rung "
        "(Pareto front 1); the best 1 (1/η with η=3, rounded up) go on, and every trial on front 1)"
    )


def test_keep_front_still_stops_dominated_trials() -> None:
    # Fronts: {0, 1, 2} and {3} (2 dominates 3). ⌈4/3⌉ = 2 go on. Front 1 goes on whole
    # (t2 is ranked 3, outside the quota); t3, dominated and ranked 4, is stopped.
    table = entries((0.10, 3e-5), (0.30, 1e-5), (0.20, 2e-5), (0.25, 2.5e-5))
    rule = MOASHA()
    verdicts = {e.trial: rule.decide(3, e, table) for e in table}
    assert {t: d.front for t, d in verdicts.items()} == {0: 1, 1: 1, 2: 1, 3: 2}
    assert [t for t, d in verdicts.items() if d.stop] == [3]
    assert verdicts[3].reason.startswith(
        "stopped at epoch 3: ranked 4 of 4 trials at this rung (Pareto front 2)"
    )
    # A dominated trial inside the quota goes on as before: add t4, dominated by all, so 5
    # entries; with η=1.25, ⌈5/1.25⌉ = 4 go on: t3 (4th) goes on and t4 (5th) stops.
    fifth = RungEntry(4, (0.90, 9e-5))
    loose = MOASHA(reduction_factor=1.25)
    assert not loose.decide(3, table[3], [*table, fifth]).stop
    assert loose.decide(3, fifth, table).stop


def test_keep_front_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="keep_front must be true or false"):
        MOASHA(keep_front="yes")  # type: ignore[arg-type]


def test_same_table_in_any_order_gives_the_same_decisions() -> None:
    table = [
        RungEntry(4, (0.10, 3e-5, 0.05)),
        RungEntry(1, (0.12, 2e-5, 0.06)),
        RungEntry(7, (0.12, 2e-5, 0.06)),  # a duplicate of trial 1
        RungEntry(2, (0.30, 1e-5, 0.04)),
        RungEntry(0, (0.40, 4e-5, 0.08)),
    ]
    rule = MOASHA(reduction_factor=3)
    expected_order = rung_order(table)
    assert expected_order.index(1) < expected_order.index(7)
    expected = {e.trial: rule.decide(3, e, table) for e in table}
    assert sorted(d.rank for d in expected.values() if d.rank is not None) == [1, 2, 3, 4, 5]
    for shuffled in itertools.permutations(table):
        assert rung_order(shuffled) == expected_order
        for candidate in shuffled:
            others = [e for e in shuffled if e is not candidate]
            assert rule.decide(3, candidate, others) == expected[candidate.trial]


def test_candidate_replaces_its_own_earlier_entry() -> None:
    rule = MOASHA(reduction_factor=2)
    # An earlier attempt of trial 1 left a poor entry; the candidate's own losses count.
    decision = rule.decide(1, RungEntry(1, (0.05, 1e-5)), entries((0.10, 2e-5), (0.90, 9e-5)))
    assert (decision.stop, decision.rank, decision.entries) == (False, 1, 2)


def test_malformed_tables_are_bugs() -> None:
    rule = MOASHA()
    with pytest.raises(ValueError, match="trial 0 appears twice"):
        rule.decide(1, RungEntry(5, (0.1, 1.0)), [RungEntry(0, (0.1, 1.0)), RungEntry(0, (0.2, 1.0))])
    with pytest.raises(ValueError, match="trial 0 has 3 losses where 2"):
        rule.decide(1, RungEntry(5, (0.1, 1.0)), [RungEntry(0, (0.1, 1.0, 2.0))])
    with pytest.raises(ValueError, match="non-finite"):
        rule.decide(1, RungEntry(5, (math.nan, 1.0)), [])


# --- before training -----------------------------------------------------------------------------


def test_dominates_is_weak_everywhere_and_strict_somewhere() -> None:
    assert dominates((1, 2), (1, 3))
    assert dominates((0, 2), (1, 2))
    assert not dominates((1, 2), (1, 2))  # equal: a tie
    assert not dominates((1, 3), (2, 2))  # a trade-off
    assert not dominates((1, 3), (1, 2))


# Complete trials' final (validation error, energy J, latency ms). The best error is trial 0's.
COMPLETE = entries((0.08, 2e-5, 0.02), (0.20, 0.5e-5, 0.01), (0.08, 3e-5, 0.01))


def test_hopeless_when_dominated_even_at_the_best_accuracy() -> None:
    rule = MOASHA(stop_before_training=True)
    decision = rule.before_training(7, (2.5e-5, 0.03), COMPLETE)
    # Trial 0 reached the best error (0.08) with lower energy and latency.
    assert decision.stop
    assert decision.dominated_by == 0
    assert decision.reason.startswith(
        "stopped before training: complete trial 0, with the best validation error"
    )
    assert dominated_at_best_error((2.5e-5, 0.03), COMPLETE) == COMPLETE[0]


def test_not_hopeless_when_cheaper_on_one_cost() -> None:
    # Cheaper latency than both trials with the best error: at that error it would be on the front.
    assert not MOASHA(stop_before_training=True).before_training(7, (4e-5, 0.005), COMPLETE).stop


def test_cheaper_but_less_accurate_trials_do_not_make_a_trial_hopeless() -> None:
    # Trial 1 is cheaper on both costs, but its error (0.20) is worse than the best (0.08) the
    # candidate is credited with; trials 0 and 2, at 0.08, are not cheaper on both.
    assert dominated_at_best_error((1e-5, 0.015), COMPLETE) is None
    assert not MOASHA(stop_before_training=True).before_training(7, (1e-5, 0.015), COMPLETE).stop


def test_equal_costs_are_a_tie_not_a_domination() -> None:
    assert not MOASHA(stop_before_training=True).before_training(7, (2e-5, 0.02), COMPLETE).stop
    # Equal on latency, dearer on energy: dominated by trial 0 (and by trial 2: lower latency).
    decision = MOASHA(stop_before_training=True).before_training(7, (2.1e-5, 0.02), COMPLETE)
    assert decision.stop and decision.dominated_by == 0


def test_of_several_dominators_the_lowest_trial_number_is_named() -> None:
    # Trials 5 and 3 both reach the best error and both dominate the candidate; 5 is the cheaper.
    complete = [RungEntry(5, (0.08, 1e-5, 0.01)), RungEntry(3, (0.08, 2e-5, 0.01))]
    assert MOASHA(stop_before_training=True).before_training(7, (3e-5, 0.02), complete).dominated_by == 3


def test_nothing_is_hopeless_before_a_trial_completes() -> None:
    decision = MOASHA(stop_before_training=True).before_training(0, (1.0, 1.0), [])
    assert not decision.stop
    assert "no trial has completed" in decision.reason


# --- settings, registry, the rule that never stops ------------------------------------------------


@pytest.mark.parametrize("eta", [1, 0.5, 0, -3, math.nan, math.inf, "3", True])
def test_bad_reduction_factor(eta: object) -> None:
    with pytest.raises(ConfigError, match=r"reduction_factor must be a finite number > 1 .*got") as error:
        MOASHA(reduction_factor=eta)  # type: ignore[arg-type]
    assert repr(eta) in str(error.value)


@pytest.mark.parametrize("min_epochs", [0, -1, 1.5, True])
def test_bad_min_epochs(min_epochs: object) -> None:
    with pytest.raises(ConfigError, match=r"min_epochs must be an integer >= 1; got"):
        MOASHA(min_epochs=min_epochs)  # type: ignore[arg-type]


@pytest.mark.parametrize("rungs", [(3, 1), (0, 1), (1, 1), (1.5, 3), (True, 2)])
def test_bad_rungs(rungs: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match=r"rungs must be integers >= 1 in strictly increasing order"):
        MOASHA(rungs=rungs)


def test_empty_rungs_point_to_the_none_rule() -> None:
    with pytest.raises(ConfigError, match=r"rungs is empty.*'none'"):
        MOASHA(rungs=())


def test_registry_builds_rules_by_name() -> None:
    assert set(STOPPING_RULES) == {"none", "mo-asha"}
    rule = stopping_rule("mo-asha", reduction_factor=2, min_epochs=3)
    assert isinstance(rule, MOASHA) and isinstance(rule, StoppingRule)
    assert rule.rungs(20) == (3, 6, 12)
    assert isinstance(stopping_rule("none"), NoStopping)


def test_unknown_rule_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown stopping rule 'asha'; valid: mo-asha, none"):
        stopping_rule("asha")


def test_unknown_setting_lists_the_valid_settings() -> None:
    with pytest.raises(ConfigError, match=r"no setting 'eta'; valid: reduction_factor, min_epochs, rungs"):
        stopping_rule("mo-asha", eta=3)
    with pytest.raises(ConfigError, match=r"'none' takes no settings; got reduction_factor"):
        stopping_rule("none", reduction_factor=3)


def test_no_stopping_never_stops() -> None:
    rule = NoStopping()
    assert isinstance(rule, StoppingRule)
    assert all(rule.rungs(epochs) == () for epochs in (1, 2, 27, 1000))
    table = chain(10)
    assert not rule.decide(1, RungEntry(99, (1.0, 1.0)), table).stop
    assert not rule.before_training(99, (1.0, 1.0), COMPLETE).stop


def test_stopping_before_training_is_a_setting() -> None:
    # The trial test_hopeless_when_dominated_even_at_the_best_accuracy stops, it trains when off.
    decision = MOASHA(stop_before_training=False).before_training(7, (2.5e-5, 0.03), COMPLETE)
    assert not decision.stop and "off" in decision.reason
    with pytest.raises(ConfigError, match="stop_before_training must be true or false"):
        MOASHA(stop_before_training="no")  # type: ignore[arg-type]


def test_rules_with_settings_are_parsed_and_named_back() -> None:
    name, settings = parse_rule("mo-asha(reduction_factor=4, stop_before_training=false, rungs=1/3)")
    assert name == "mo-asha"
    assert settings == {"reduction_factor": 4, "stop_before_training": False, "rungs": (1, 3)}
    assert rule_label(name, settings) == "mo-asha(reduction_factor=4,stop_before_training=false,rungs=1/3)"
    assert parse_rule(rule_label(name, settings)) == (name, settings)
    assert parse_rule("none") == ("none", {}) and rule_label("mo-asha", {}) == "mo-asha"
    rule = stopping_rule(name, **settings)
    assert rule.rungs(20) == (1, 3) and not rule.stop_before_training
    for bad, message in [
        ("moasha", "unknown stopping rule 'moasha'; valid: mo-asha, none"),
        ("mo-asha(eta=4)", "has no setting 'eta'; valid: reduction_factor"),
        ("mo-asha(keep_front=maybe)", "keep_front must be true or false"),
        ("mo-asha(rungs=1/x)", "rungs are whole epochs joined by '/'"),
        ("mo-asha(reduction_factor=4", "settings go in parentheses"),
        ("mo-asha(reduction_factor)", "is not key=value"),
        ("none(a=1)", "takes no settings"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_rule(bad)
