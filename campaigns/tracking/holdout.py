"""Did the letters make a difference? Treated against held out, with a 95 % interval.

The holdout (a stable share of the audience recorded `held_out`, never sent) is the
control group. For each, the renewal rate is the share of rows whose contract renewed
within the attribution window after the row was decided (report cells' `renewed_sent` and
`renewed_held_out`), so organic renewals count on both sides alike.

The method is the standard one for two proportions (e.g. Agresti, *Categorical Data
Analysis*, §2.4; Fleiss, *Statistical Methods for Rates and Proportions*, §4.2):

- absolute uplift d = p1 - p0 with the Wald interval d ± z·sqrt(p1(1-p1)/n1 + p0(1-p0)/n0);
- relative uplift p1/p0 - 1 with the interval of the log risk ratio,
  exp(log(p1/p0) ± z·sqrt(1/x1 - 1/n1 + 1/x0 - 1/n0)) - 1 (Katz);
- two-sided p-value of the pooled z-test;
- how many recipients a difference this size needs to be told from chance (α = 0.05,
  power 80 %), at the same treated-to-held-out ratio (Fleiss).

The difference is called significant when the interval of d leaves out 0 and the p-value is
under 0.05 (the two agree but where a group's rate is 0 or 1 on few letters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist

from campaigns.tracking.results import Figures, in_currency

Z = NormalDist().inv_cdf(0.975)  # 1.959964…: two-sided 95 %
POWER_Z = NormalDist().inv_cdf(0.80)  # 0.841621…


@dataclass(frozen=True)
class Comparison:
    treated: int  # letters delivered
    treated_renewed: int
    held_out: int
    held_out_renewed: int
    # Revenue of those renewals per recipient, when it can be put in one currency.
    treated_revenue_per_recipient: Decimal | None = None
    held_out_revenue_per_recipient: Decimal | None = None
    currency: str = ""

    @property
    def treated_rate(self) -> float:
        return self.treated_renewed / self.treated if self.treated else 0.0

    @property
    def held_out_rate(self) -> float:
        return self.held_out_renewed / self.held_out if self.held_out else 0.0

    @property
    def comparable(self) -> bool:
        return self.treated > 0 and self.held_out > 0

    @property
    def uplift(self) -> float:
        """Absolute uplift: treated rate minus held-out rate (0.04 is 4 points)."""
        return self.treated_rate - self.held_out_rate

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95 % (Wald) interval of the absolute uplift."""
        if not self.comparable:
            return None
        p1, p0 = self.treated_rate, self.held_out_rate
        se = math.sqrt(p1 * (1 - p1) / self.treated + p0 * (1 - p0) / self.held_out)
        return self.uplift - Z * se, self.uplift + Z * se

    @property
    def relative(self) -> float | None:
        """Relative uplift: how much more often the treated renewed (0.5 is 50 % more)."""
        if not self.comparable or self.held_out_renewed == 0:
            return None
        return self.treated_rate / self.held_out_rate - 1

    @property
    def relative_interval(self) -> tuple[float, float] | None:
        if self.relative is None or self.treated_renewed == 0:
            return None
        x1, n1, x0, n0 = self.treated_renewed, self.treated, self.held_out_renewed, self.held_out
        se = math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0)
        log_ratio = math.log(self.treated_rate / self.held_out_rate)
        return math.exp(log_ratio - Z * se) - 1, math.exp(log_ratio + Z * se) - 1

    @property
    def p_value(self) -> float | None:
        if not self.comparable:
            return None
        n1, n0 = self.treated, self.held_out
        pooled = (self.treated_renewed + self.held_out_renewed) / (n1 + n0)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
        if se == 0:
            return 1.0
        return 2 * (1 - NormalDist().cdf(abs(self.uplift) / se))

    @property
    def significant(self) -> bool:
        """Both say so: the interval leaves out 0 and the test's p-value is under 0.05.
        (With a group's rate at 0 or 1 the Wald interval has no spread of its own and can
        leave out 0 on a handful of letters; the pooled test does not.)"""
        interval, p_value = self.interval, self.p_value
        if interval is None or p_value is None:
            return False
        return (interval[0] > 0 or interval[1] < 0) and p_value < 0.05

    @property
    def needed(self) -> int | None:
        """Recipients in all (treated and held out, at today's ratio) that a difference of
        this size needs to be told from chance; None when there is no difference."""
        if not self.comparable or self.uplift == 0:
            return None
        ratio = self.treated / self.held_out
        p1, p0 = self.treated_rate, self.held_out_rate
        mean = (ratio * p1 + p0) / (ratio + 1)
        spread = (Z * math.sqrt(mean * (1 - mean) * (1 + 1 / ratio))
                  + POWER_Z * math.sqrt(p1 * (1 - p1) / ratio + p0 * (1 - p0)))  # fmt: skip
        held_out = math.ceil(spread**2 / self.uplift**2)
        return held_out + math.ceil(held_out * ratio)

    def sentence(self) -> str:
        """What the comparison says, in plain words."""
        if self.held_out == 0:
            return ("No recipients were held out, so there is nothing to compare with: set a "
                    "holdout percentage on the campaign or automation.")  # fmt: skip
        if self.treated == 0:
            return "No letters went out yet, so there is nothing to compare."
        said = (f"Recipients renewed at {_pct(self.treated_rate)} against "
                f"{_pct(self.held_out_rate)} for the {self.held_out:,} held out")  # fmt: skip
        interval = self.interval
        assert interval is not None
        points = f"{abs(self.uplift) * 100:.1f} points {'more' if self.uplift >= 0 else 'less'}"
        said += (f": {points} (95 % interval {interval[0] * 100:+.1f} to "
                 f"{interval[1] * 100:+.1f} points)")  # fmt: skip
        if self.relative is not None:
            said += f", {abs(self.relative) * 100:.0f} % {'more' if self.relative >= 0 else 'less'} in relative terms"  # noqa: E501
        said += "."
        if self.significant:
            return said + " The difference is statistically significant (95 %)."
        if self.needed is None:
            return said + " No difference is seen yet."
        more = max(self.needed - self.treated - self.held_out, 0)
        return said + (
            " The difference is not statistically significant yet: it would take about "
            f"{more:,} more recipients (at this holdout share) to tell a difference this size "
            "from chance."
        )


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def compare(figures: Figures, *, currency: str, rates: Iterable[tuple[str, Decimal]]) -> Comparison:
    """The comparison of a report line (or total): its treated and held-out renewals."""
    rates = tuple(rates)
    counts = figures.counts

    def per_recipient(amounts: dict[str, Decimal], people: int) -> Decimal | None:
        total = in_currency(amounts, currency, rates)
        if total is None or not people:
            return None
        return (total / people).quantize(Decimal("0.01"))

    return Comparison(
        treated=counts["sent"], treated_renewed=counts["renewed_sent"],
        held_out=counts["held_out"], held_out_renewed=counts["renewed_held_out"],
        treated_revenue_per_recipient=per_recipient(figures.outcome_revenue, counts["sent"]),
        held_out_revenue_per_recipient=per_recipient(figures.held_out_revenue,
                                                     counts["held_out"]),
        currency=currency,
    )  # fmt: skip
