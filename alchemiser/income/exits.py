"""When an open short option is closed or rolled, and the wheel's money arithmetic.

``exit_decision`` applies the management rules in this order of precedence:

1. ``stop_loss``: the mark reached ``stop_loss_credit_multiple`` × the credit,
   or the option's IV rose to ``stop_loss_iv_rise_pct`` % above its IV at entry;
2. ``take_profit``: the mark fell to (1 − ``take_profit_pct`` / 100) × the
   credit, i.e. that share of the credit is captured;
3. ``near_expiry``: days to expiry ≤ ``roll_or_close_at_dte`` (the service
   rolls or closes per ``near_expiry_action``);
4. ``hold``.

All boundaries are inclusive. The IV test is skipped when either IV is
unknown; the mark tests when the credit is not positive. Marks and credits
are per share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from alchemiser.income.candidates import Kind
from alchemiser.settings.income import Management

__all__ = [
    "ExitAction",
    "ExitDecision",
    "OpenShort",
    "assigned_cost_basis",
    "exit_decision",
    "realised_pnl_short",
]

ExitAction = Literal["hold", "take_profit", "stop_loss", "near_expiry"]
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class OpenShort:
    """A short call or put the income strategy holds."""

    kind: Kind
    symbol: str
    strike: Decimal
    expiry: date
    contracts: int
    credit_per_share: Decimal
    entry_iv: float | None


@dataclass(frozen=True, slots=True)
class ExitDecision:
    action: ExitAction
    reason: str


def _m(value: Decimal) -> str:
    return f"{value:,.2f}"


def _n(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _iv(value: float | None) -> Decimal | None:
    """An IV as an exact Decimal of its shortest repr; None if unknown or not positive."""
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return Decimal(repr(value))


def exit_decision(
    pos: OpenShort, mark: Decimal, iv: float | None, today: date, m: Management
) -> ExitDecision:
    """What to do with ``pos`` today, given its mark and IV; the reason names the numbers."""
    credit = pos.credit_per_share
    dte = (pos.expiry - today).days
    if credit > 0:
        stop_at = credit * m.stop_loss_credit_multiple
        if mark >= stop_at:
            return ExitDecision(
                "stop_loss",
                f"mark {_m(mark)} ≥ {_m(stop_at)} = {_n(m.stop_loss_credit_multiple)}× "
                f"credit {_m(credit)}",
            )
    entry, now_iv = _iv(pos.entry_iv), _iv(iv)
    if entry is not None and now_iv is not None:
        iv_stop = entry * (1 + m.stop_loss_iv_rise_pct / _HUNDRED)
        if now_iv >= iv_stop:
            return ExitDecision(
                "stop_loss",
                f"IV {now_iv:.4f} ≥ {iv_stop:.4f} = entry IV {entry:.4f} + "
                f"{_n(m.stop_loss_iv_rise_pct)} %",
            )
    if credit > 0:
        target = credit * (1 - m.take_profit_pct / _HUNDRED)
        if mark <= target:
            return ExitDecision(
                "take_profit",
                f"mark {_m(mark)} ≤ {_m(target)} = {_n(m.take_profit_pct)} % of credit "
                f"{_m(credit)} captured",
            )
    if dte <= m.roll_or_close_at_dte:
        return ExitDecision(
            "near_expiry",
            f"{dte} days to expiry ≤ {m.roll_or_close_at_dte}: {m.near_expiry_action}",
        )
    if credit > 0:
        captured = (credit - mark) / credit * _HUNDRED
        held = f"mark {_m(mark)} vs credit {_m(credit)} ({captured:.0f} % captured)"
    else:
        held = f"mark {_m(mark)}"
    return ExitDecision("hold", f"{held}, {dte} days to expiry")


def assigned_cost_basis(strike: Decimal, credit_per_share: Decimal) -> Decimal:
    """Per-share cost basis of shares from an assigned put: strike − premium (the wheel)."""
    return strike - credit_per_share


def realised_pnl_short(credit_total: Decimal, close_cost_total: Decimal) -> Decimal:
    """Realised P&L of a short option: the credit received − what closing it cost (0 if expired)."""
    return credit_total - close_cost_total
