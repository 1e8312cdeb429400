"""What the runs can tell apart: which cell of a column is the best (bold) or statistically tied with it (≈),
and the interval of a reproduced − reported difference.

Both work from a cell's aggregate (mean, population std as `aggregate.DDOF`, n runs), so no view reads the
records again. Tests are two-sided Welch t-tests (unequal variances), as a reader comparing two columns of runs
would do; a cell with fewer than 2 runs has no sample variance and is never tested.
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Mapping, TypeVar

from scipy.special import stdtr, stdtrit

from bench.report.aggregate import DDOF
from bench.report.inputs import SIGNIFICANCE

BEST, TIED = "best", "tied"
TIE = "≈"  # appended to a tied cell's text: it renders in every format (LaTeX maps it to $\approx$)

K = TypeVar("K", bound=Hashable)


def sample_std(std: float, n: int) -> float:
    """The ddof=1 std of n runs from their ddof=`DDOF` std: what a t-test needs."""
    return std * math.sqrt((n - DDOF) / (n - 1))


def welch_p(a: Any, b: Any) -> float:
    """Two-sided p-value of Welch's t-test between two aggregated cells (`mean`, `std`, `n`); NaN when either
    has fewer than 2 runs. Runs without spread differ for sure (p = 0) unless their means are equal (p = 1)."""
    if a.n < 2 or b.n < 2:
        return math.nan
    if a.std == 0 and b.std == 0:
        return 0.0 if a.mean != b.mean else 1.0
    va, vb = sample_std(a.std, a.n) ** 2 / a.n, sample_std(b.std, b.n) ** 2 / b.n  # variances of the means
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))  # Welch–Satterthwaite
    # Student's t distribution from scipy.special, as scipy.stats computes it: importing scipy.stats takes 1.8 s,
    # scipy.special 0.5 s (python -X importtime).
    return float(2 * stdtr(df, -abs(a.mean - b.mean) / math.sqrt(va + vb)))


def column_verdict(cells: Mapping[K, Any], level: float = SIGNIFICANCE) -> dict[K, str]:
    """Which cells of one column are marked: {key: BEST} for the largest mean when its runs beat the runner-up's
    (Welch p < level) and it has all its planned runs, else {key: TIED} for it and every cell whose test against
    it is not significant (p >= level), where there is at least one such cell; unmarked cells are left out.

    `cells`: aggregated rows (mean, std, n, n_expected) by key; those without a mean are ignored. A paper's
    printed table (n_expected = 0 everywhere: no runs) marks its largest mean BEST, as the paper printed it.
    """
    scored = sorted((k for k, r in cells.items() if not math.isnan(r.mean)), key=lambda k: -cells[k].mean)
    if not scored:
        return {}
    if all(cells[k].n_expected == 0 for k in scored):
        return {k: BEST for k in scored if cells[k].mean == cells[scored[0]].mean}
    leader, *others = [cells[k] for k in scored]
    p = [welch_p(leader, r) for r in others]
    if p and p[0] < level:
        return {scored[0]: BEST} if leader.n >= leader.n_expected else {}
    tied = [k for k, q in zip(scored[1:], p) if q >= level]
    return {k: TIED for k in [scored[0], *tied]} if tied else {}


def delta_interval(mean: float, std: float, n: int, ref_mean: float, ref_std: float | None, ref_n: int,
                   level: float = SIGNIFICANCE) -> tuple[float, float] | None:
    """The (1 − level) interval of mean − ref_mean: a t-interval of the runs' mean where the paper prints no std,
    else Welch's interval of the difference, the paper's std taken as ddof=`DDOF` over `ref_n` runs (as np.std in
    the papers' code). None with fewer than 2 runs."""
    if n < 2:
        return None
    parts = [(sample_std(std, n) ** 2 / n, n - 1)]  # (variance of a mean, its degrees of freedom)
    if ref_std is not None:
        parts.append((sample_std(ref_std, ref_n) ** 2 / ref_n, ref_n - 1))
    delta, var = mean - ref_mean, sum(v for v, _ in parts)
    if var == 0:
        return delta, delta
    df = var ** 2 / sum(v ** 2 / d for v, d in parts)  # Welch–Satterthwaite; n - 1 with one part
    half = float(stdtrit(df, 1 - level / 2)) * math.sqrt(var)
    return delta - half, delta + half
