"""The holdout comparison against a hand calculation (written out below)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from campaigns.tracking.holdout import Comparison, compare
from campaigns.tracking.results import Figures


def test_a_clear_uplift_matches_the_hand_calculation() -> None:
    # 1,000 letters sent, 120 renewed (12 %); 1,000 held out, 80 renewed (8 %).
    c = Comparison(treated=1000, treated_renewed=120, held_out=1000, held_out_renewed=80)
    # d = 0.12 - 0.08 = 0.04
    # se = sqrt(0.12*0.88/1000 + 0.08*0.92/1000) = sqrt(0.0001056 + 0.0000736)
    #    = sqrt(0.0001792) = 0.0133866
    # 95 %: 0.04 ± 1.959964 * 0.0133866 = 0.04 ± 0.0262373 → (0.0137627, 0.0662373)
    assert c.uplift == pytest.approx(0.04)
    low, high = c.interval or (0, 0)
    assert (low, high) == (pytest.approx(0.0137627, abs=1e-6), pytest.approx(0.0662373, abs=1e-6))
    # relative: 0.12/0.08 - 1 = 0.5; se(log RR) = sqrt(1/120 - 1/1000 + 1/80 - 1/1000)
    #   = sqrt(0.0188333) = 0.1372346; log 1.5 = 0.4054651; 1.959964 * 0.1372346 = 0.2689749;
    #   exp(0.4054651 ∓ 0.2689749) - 1 = exp(0.1364902) - 1, exp(0.6744400) - 1
    #   = 0.1462437, 0.9629334
    assert c.relative == pytest.approx(0.5)
    r_low, r_high = c.relative_interval or (0, 0)
    assert (r_low, r_high) == (
        pytest.approx(0.1462437, abs=1e-6),
        pytest.approx(0.9629334, abs=1e-6),
    )
    # pooled p = 200/2000 = 0.1; se0 = sqrt(0.1*0.9*(2/1000)) = 0.0134164; z = 2.981424;
    # two-sided p = 2 * (1 - Φ(2.981424)) = 0.002869
    assert c.p_value == pytest.approx(0.002869, abs=2e-6)
    assert c.significant
    # needed per group: (1.959964*sqrt(0.1*0.9*2) + 0.841621*sqrt(0.1056+0.0736))² / 0.04²
    #   = (0.831542 + 0.356275)² / 0.0016 = 1.410910 / 0.0016 = 881.8 → 882; both: 1,764
    assert c.needed == 1764
    assert c.sentence() == (
        "Recipients renewed at 12.0 % against 8.0 % for the 1,000 held out: 4.0 points more "
        "(95 % interval +1.4 to +6.6 points), 50 % more in relative terms. The difference is "
        "statistically significant (95 %)."
    )


def test_a_small_holdout_says_how_many_more_it_would_take() -> None:
    # 900 sent, 99 renewed (11 %); 100 held out, 9 renewed (9 %).
    c = Comparison(treated=900, treated_renewed=99, held_out=100, held_out_renewed=9)
    # se = sqrt(0.11*0.89/900 + 0.09*0.91/100) = sqrt(0.00010878 + 0.000819) = 0.0304594
    # 0.02 ± 1.959964*0.0304594 = 0.02 ± 0.0596994 → (-0.0396994, 0.0796994): not significant
    low, high = c.interval or (0, 0)
    assert (low, high) == (pytest.approx(-0.0396994, abs=1e-6), pytest.approx(0.0796994, abs=1e-6))
    assert not c.significant
    # ratio k = 9; mean = (9*0.11 + 0.09)/10 = 0.108;
    # (1.959964*sqrt(0.108*0.892*(1+1/9)) + 0.841621*sqrt(0.11*0.89/9 + 0.09*0.91))² / 0.02²
    #   = (1.959964*0.3271697 + 0.841621*0.3045944)² / 0.0004 = (0.6412408 + 0.2563532)² / 0.0004
    #   = 2014.2 → 2,015 held out and 9 × 2,015 = 18,135 sent: 20,150 in all, 19,150 more
    assert c.needed == 20150
    assert c.sentence().endswith(
        "The difference is not statistically significant yet: it would take about 19,150 more "
        "recipients (at this holdout share) to tell a difference this size from chance."
    )


def test_a_handful_held_out_with_no_renewal_is_not_called_significant() -> None:
    # 20 sent, 9 renewed (45 %); 1 held out, 0 renewed. Wald: se = sqrt(0.45*0.55/20 + 0)
    # = 0.1112; 0.45 ± 0.2180 → (0.232, 0.668) leaves out 0 — but the pooled test:
    # p = 9/21 = 0.4286, se0 = sqrt(0.4286*0.5714*(1/20 + 1)) = 0.5071, z = 0.887, p = 0.375.
    c = Comparison(treated=20, treated_renewed=9, held_out=1, held_out_renewed=0)
    low, _ = c.interval or (0, 0)
    assert low > 0 and c.p_value == pytest.approx(0.375, abs=1e-3)
    assert not c.significant
    assert "not statistically significant yet" in c.sentence()


def test_nothing_to_compare_is_said_plainly() -> None:
    assert Comparison(10, 1, 0, 0).sentence().startswith("No recipients were held out")
    assert Comparison(10, 1, 0, 0).interval is None
    assert Comparison(10, 0, 10, 0).sentence().endswith("No difference is seen yet.")


def test_revenue_per_recipient_converts_with_the_rates() -> None:
    figures = Figures()
    figures.counts.update(sent=4, renewed_sent=2, held_out=2, renewed_held_out=1)
    figures.outcome_revenue = {"EUR": Decimal("100"), "USD": Decimal("100")}
    figures.held_out_revenue = {"EUR": Decimal("30")}
    c = compare(figures, currency="EUR", rates=[("USD", Decimal("0.9"))])
    assert c.treated_revenue_per_recipient == Decimal("47.50")  # (100 + 90) / 4
    assert c.held_out_revenue_per_recipient == Decimal("15.00")
    assert compare(figures, currency="EUR", rates=[]).treated_revenue_per_recipient is None
