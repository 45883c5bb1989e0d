"""Regression checks between two runs: a benchmark slower by more than a threshold, or a parity gate lost."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.markdown import ms, table
from bench.results import Row


@dataclass
class Change:
    """One benchmark present in both runs."""

    name: str
    old_s: float
    new_s: float
    regressed: bool
    improved: bool
    parity_lost: bool

    @property
    def ratio(self) -> float:
        """new / old median time (above 1: slower)."""
        return self.new_s / self.old_s if self.old_s > 0 else math.inf

    @property
    def status(self) -> str:
        """The status column of the comparison table."""
        if self.parity_lost:
            return "**REGRESSION (parity lost)**"
        return "**REGRESSION**" if self.regressed else "improved" if self.improved else "same"


def _change(new: Row, old: Row, threshold: float) -> Change:
    ratio = new.median_s / old.median_s if old.median_s > 0 else math.inf
    parity_lost = bool((old.extra.get("parity") or {}).get("pass")) and (new.extra.get("parity") or {}).get("pass") is False
    return Change(new.fullname, old.median_s, new.median_s, ratio > 1 + threshold or parity_lost,
                  ratio < 1 / (1 + threshold), parity_lost)


def compare_runs(new: Sequence[Row], old: Sequence[Row], threshold: float) -> tuple[list[Change], list[str], list[str]]:
    """(changes, only in old, only in new); a regression is a median time above old * (1 + threshold), or a lost parity pass."""
    old_by = {r.fullname: r for r in old}
    new_by = {r.fullname: r for r in new}
    changes = [_change(n, old_by[name], threshold) for name, n in new_by.items() if name in old_by]
    return (sorted(changes, key=lambda c: -c.ratio), sorted(set(old_by) - set(new_by)), sorted(set(new_by) - set(old_by)))


def comparison_markdown(changes: list[Change], only_old: list[str], only_new: list[str], threshold: float,
                        old_path: Path) -> list[str]:
    """The comparison section: regressions first."""
    regressed = [c for c in changes if c.regressed]
    out = [f"## Comparison with `{old_path}`", "",
           (f"Median time per round, new vs old; a regression is more than {threshold:.0%} slower, or a parity gate "
            f"that passed and now fails. {len(regressed)} regression(s), "
            f"{sum(c.improved for c in changes)} improvement(s), {len(changes)} benchmarks compared."), ""]
    rows = [[f"`{c.name}`", ms(c.old_s * 1000), ms(c.new_s * 1000), f"{(c.ratio - 1) * 100:+.1f}%", c.status]
            for c in changes]
    out += [table(["benchmark", "old ms", "new ms", "change", "status"], rows, "lrrrl"), ""]
    if only_old:
        out += ["Only in the old run: " + ", ".join(f"`{n}`" for n in only_old), ""]
    if only_new:
        out += ["Only in the new run: " + ", ".join(f"`{n}`" for n in only_new), ""]
    return out
