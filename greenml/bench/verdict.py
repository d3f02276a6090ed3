"""The verdict of a replay: greenml's default strategy against random and TPE, in words.

``greenml bench run`` prints these lines and writes them into its JSON (``verdicts``); they
compare the median energy to reach 95% of the true front's hypervolume with the goals the
default was chosen for (at most 1/3 of random's, 1/2 of TPE's).
"""

from __future__ import annotations

from typing import Any

from greenml.bench.summary import ratio

__all__ = ["default_strategy", "verdict_lines"]


def default_strategy() -> str:
    """The strategy ``greenml search`` runs by default: its sampler with its early-stopping rule."""
    import inspect

    from greenml.search import STOPPING_RULES, SearchConfig, rule_label

    config = SearchConfig()
    if config.early_stopping == "none":
        return config.sampler
    # The search's settings where they differ from the rule's own defaults, as bench names them.
    parameters = inspect.signature(STOPPING_RULES[config.early_stopping]).parameters
    settings = {}
    for name, parameter in parameters.items():
        value = getattr(config, name, parameter.default)
        if value != parameter.default:
            settings[name] = value
    return f"{config.sampler}+{rule_label(config.early_stopping, settings)}"


def verdict_lines(result: Any) -> list[str]:
    """The default strategy against random and against TPE without stopping, where both ran."""
    by_name = {s.name: s for s in result.summaries}
    default = default_strategy()
    lines = []
    if default not in by_name:
        return [
            f"greenml's default strategy ({default}) was not among these; add it to --samplers to compare it"
        ]
    mine = by_name[default].median_energy_to_target_j
    for other, goal in (("random", 1 / 3), ("tpe", 1 / 2)):
        if other == default or other not in by_name:
            continue
        theirs = by_name[other].median_energy_to_target_j
        significant = result.test.differs(default, other)
        test = f"the difference is {'' if significant else 'not '}significant at α = 0.05"
        r = ratio(mine, theirs)
        if mine is not None and theirs is None:
            # Their median never reached 95%: it is more than the energy those seeds spent.
            at_least = by_name[other].median_energy_at_least_j
            bound = mine / at_least if at_least > 0 else None
            if bound is not None:
                lines.append(
                    f"{default} needs at most {bound:.2f}x the energy of {other} to reach 95% ({other}'s "
                    f"median never reached it: more than {at_least:.4g} J; goal <= {goal:.2f}x: "
                    f"{'met' if bound <= goal else 'undecided'}; {test})"
                )
                continue
        if r is None:
            lines.append(f"{default} vs {other}: no ratio ({default}'s median never reached 95%)")
            continue
        lines.append(
            f"{default} needs {r:.2f}x the energy of {other} to reach 95% (goal <= {goal:.2f}x: "
            f"{'met' if r <= goal else 'missed'}; {test})"
        )
    return lines
