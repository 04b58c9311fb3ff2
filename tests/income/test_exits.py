"""Exit rules: precedence and inclusive boundaries; the wheel's cost basis and realised P&L."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alchemiser.income.candidates import Kind
from alchemiser.income.exits import (
    ExitDecision,
    OpenShort,
    assigned_cost_basis,
    exit_decision,
    realised_pnl_short,
)
from alchemiser.settings.income import IncomeSettings, Management

M = IncomeSettings().management
TODAY = date(2026, 3, 2)
FAR = TODAY + timedelta(days=30)


def short(
    credit: str = "1.00",
    entry_iv: float | None = 0.20,
    expiry: date = FAR,
    kind: Kind = "cash_secured_put",
) -> OpenShort:
    return OpenShort(
        kind=kind,
        symbol="XYZ260401P00100000",
        strike=Decimal(100),
        expiry=expiry,
        contracts=2,
        credit_per_share=Decimal(credit),
        entry_iv=entry_iv,
    )


def decide(
    mark: str, iv: float | None = 0.20, pos: OpenShort | None = None, m: Management = M
) -> ExitDecision:
    return exit_decision(pos or short(), Decimal(mark), iv, TODAY, m)


def test_defaults_are_the_parameters() -> None:
    assert (M.take_profit_pct, M.stop_loss_credit_multiple, M.stop_loss_iv_rise_pct) == (
        Decimal(50),
        Decimal(2),
        Decimal(50),
    )
    assert M.roll_or_close_at_dte == 7


def test_stop_loss_on_mark_boundary() -> None:
    at = decide("2.00")
    assert at.action == "stop_loss"
    assert at.reason == "mark 2.00 ≥ 2.00 = 2× credit 1.00"
    assert decide("1.99").action == "hold"


def test_stop_loss_on_iv_jump_boundary_is_exact() -> None:
    # 0.2 × 1.5 is 0.30000000000000004 in floats: the rule compares exact decimals
    at = decide("0.80", iv=0.30)
    assert at.action == "stop_loss"
    assert at.reason == "IV 0.3000 ≥ 0.3000 = entry IV 0.2000 + 50 %"
    assert decide("0.80", iv=0.2999).action == "hold"


def test_iv_rule_skipped_when_an_iv_is_unknown() -> None:
    assert decide("0.80", iv=None).action == "hold"
    assert decide("0.80", iv=5.0, pos=short(entry_iv=None)).action == "hold"
    assert decide("0.80", iv=float("nan")).action == "hold"


def test_take_profit_boundary() -> None:
    at = decide("0.50")
    assert at.action == "take_profit"
    assert at.reason == "mark 0.50 ≤ 0.50 = 50 % of credit 1.00 captured"
    assert decide("0.51").action == "hold"
    assert decide("0.40").reason == "mark 0.40 ≤ 0.50 = 50 % of credit 1.00 captured"


def test_near_expiry_boundary() -> None:
    at = decide("0.80", pos=short(expiry=TODAY + timedelta(days=M.roll_or_close_at_dte)))
    assert at.action == "near_expiry"
    assert at.reason == f"7 days to expiry ≤ 7: {M.near_expiry_action}"
    later = decide("0.80", pos=short(expiry=TODAY + timedelta(days=M.roll_or_close_at_dte + 1)))
    assert later.action == "hold"
    assert later.reason == "mark 0.80 vs credit 1.00 (20 % captured), 8 days to expiry"


def test_precedence_stop_loss_then_take_profit_then_near_expiry() -> None:
    soon = short(expiry=TODAY + timedelta(days=1))
    # stop loss beats near expiry
    assert decide("2.50", pos=soon).action == "stop_loss"
    # an IV jump beats a captured profit
    assert decide("0.30", iv=0.40).action == "stop_loss"
    # take profit beats near expiry
    assert decide("0.30", pos=soon).action == "take_profit"
    assert decide("0.80", pos=soon).action == "near_expiry"


def test_management_settings_are_read() -> None:
    tight = Management(
        take_profit_pct=Decimal(80),
        stop_loss_credit_multiple=Decimal("1.5"),
        stop_loss_iv_rise_pct=Decimal(10),
        roll_or_close_at_dte=3,
        near_expiry_action="close",
    )
    assert decide("1.50", iv=None, m=tight).action == "stop_loss"
    assert decide("0.21", iv=None, m=tight).action == "hold"
    assert decide("0.20", iv=None, m=tight).reason == (
        "mark 0.20 ≤ 0.20 = 80 % of credit 1.00 captured"
    )
    assert decide("0.80", iv=0.22, m=tight).action == "stop_loss"
    near = decide("0.80", iv=None, pos=short(expiry=TODAY + timedelta(days=3)), m=tight)
    assert near.reason == "3 days to expiry ≤ 3: close"


@given(
    mark=st.decimals(min_value=0, max_value=10, places=2),
    iv=st.one_of(st.none(), st.floats(0.01, 3)),
    days=st.integers(-5, 120),
)
def test_every_mark_gets_exactly_one_known_action(
    mark: Decimal, iv: float | None, days: int
) -> None:
    pos = short(expiry=TODAY + timedelta(days=days))
    result = exit_decision(pos, mark, iv, TODAY, M)
    assert result.action in ("hold", "take_profit", "stop_loss", "near_expiry")
    if mark >= 2:
        assert result.action == "stop_loss"
    assert result.reason


@pytest.mark.parametrize(
    ("strike", "credit", "basis"), [("100", "1.20", "98.80"), ("42.5", "0.85", "41.65")]
)
def test_assigned_cost_basis_is_strike_minus_premium(strike: str, credit: str, basis: str) -> None:
    assert assigned_cost_basis(Decimal(strike), Decimal(credit)) == Decimal(basis)


def test_realised_pnl_short() -> None:
    assert realised_pnl_short(Decimal("240.00"), Decimal("100.00")) == Decimal("140.00")
    assert realised_pnl_short(Decimal("240.00"), Decimal(0)) == Decimal("240.00")
    assert realised_pnl_short(Decimal("240.00"), Decimal("480.00")) == Decimal("-240.00")
