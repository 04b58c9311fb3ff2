"""How much of each income-book limit the book uses now (the pre-trade rules, applied to the book).

The rule that decides "over the limit" is the pre-trade check's own (``risk.pretrade``);
this module only measures the book as it stands:

- net delta, gamma and vega of the income book against ``max_abs_net_delta``,
  ``max_abs_net_gamma`` and ``max_vega_pct``;
- income option positions held against ``max_income_positions``;
- per sector, equity market value plus the notional of short income puts (cash
  secured: strike × 100 × contracts) against ``max_sector_pct`` % of NAV.

A sector limit is only *alerted* when the income book holds options in that sector:
the equity book is the user's, and a concentrated equity book alone is reported,
not alarmed (its alert would escalate to EMERGENCY and stop the daemon's trading).
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alchemiser.domain.options import parse_occ
from alchemiser.risk.book import RiskPosition
from alchemiser.risk.greeks import BookGreeks
from alchemiser.risk.pretrade import (
    Breach,
    ProposedLeg,
    check_net_delta,
    check_net_gamma,
    check_position_count,
    check_sector,
    check_vega,
    leg_notional,
)
from alchemiser.settings.risk import RiskSettings

__all__ = ["LimitUsage", "limit_usage"]

_HUNDRED = Decimal(100)
_INF = Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One limit: the measured value, the limit, the value as % of the limit, and any breach."""

    key: str  # stable: net_delta, net_gamma, vega, income_positions, sector:<name>
    label: str
    value: Decimal
    limit: Decimal
    usage_pct: Decimal  # |value| / limit × 100; Infinity against a zero limit
    breach: Breach | None
    alerted: bool  # whether the monitor raises alerts for this limit

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "value": str(self.value),
            "limit": str(self.limit),
            "usage_pct": str(self.usage_pct),
            "over": self.breach is not None,
            "alerted": self.alerted,
        }


def _usage(value: Decimal, limit: Decimal) -> Decimal:
    value = abs(value)
    if value == 0:
        return Decimal(0)
    if limit <= 0 or not value.is_finite():
        return _INF
    return (value / limit * _HUNDRED).quantize(Decimal("0.01"))


def _ratio(value: Decimal, nav: Decimal) -> Decimal:
    return (value / nav).quantize(Decimal("0.0001")) if nav > 0 else _INF


def limit_usage(
    book: Sequence[RiskPosition],
    greeks: BookGreeks,
    nav: Decimal,
    risk: RiskSettings,
    sector_of: Callable[[str], str],
) -> list[LimitUsage]:
    """Usage of every income-book limit by ``book`` (as ``current_risk`` built it)."""
    income = greeks.by_strategy["income"]
    out = [
        LimitUsage(
            "net_delta",
            "income net delta / NAV",
            _ratio(income.beta_delta_dollars, nav),
            risk.max_abs_net_delta,
            _usage(_ratio(income.beta_delta_dollars, nav), risk.max_abs_net_delta),
            check_net_delta(income.beta_delta_dollars, nav, risk.max_abs_net_delta),
            True,
        ),
        LimitUsage(
            "net_gamma",
            "income gamma per 1 % / NAV",
            _ratio(income.gamma_dollars, nav),
            risk.max_abs_net_gamma,
            _usage(_ratio(income.gamma_dollars, nav), risk.max_abs_net_gamma),
            check_net_gamma(income.gamma_dollars, nav, risk.max_abs_net_gamma),
            True,
        ),
    ]
    vega_pct = abs(income.vega) / nav * _HUNDRED if nav > 0 else _INF
    out.append(
        LimitUsage(
            "vega",
            "income vega per vol point, % NAV",
            vega_pct.quantize(Decimal("0.0001")) if vega_pct.is_finite() else vega_pct,
            risk.max_vega_pct,
            _usage(vega_pct, risk.max_vega_pct),
            check_vega(income.vega, nav, risk.max_vega_pct),
            True,
        )
    )
    held = sorted({p.symbol for p in book if p.strategy == "income" and p.kind == "option"})
    out.append(
        LimitUsage(
            "income_positions",
            "income positions",
            Decimal(len(held)),
            Decimal(risk.max_income_positions),
            _usage(Decimal(len(held)), Decimal(risk.max_income_positions)),
            check_position_count(len(held), risk.max_income_positions),
            True,
        )
    )
    out.extend(_sectors(book, nav, risk, sector_of))
    return out


def _sectors(
    book: Sequence[RiskPosition],
    nav: Decimal,
    risk: RiskSettings,
    sector_of: Callable[[str], str],
) -> list[LimitUsage]:
    value: dict[str, Decimal] = {}
    income_sectors: set[str] = set()
    for p in book:
        sector = sector_of(p.underlying)
        if p.kind == "equity":
            amount = Decimal(repr(p.qty)) * Decimal(repr(p.spot))
        elif p.strategy == "income":
            income_sectors.add(sector)
            leg = ProposedLeg(p.symbol, parse_occ(p.symbol), int(p.qty), Decimal(repr(p.spot)))
            # Cash-secured puts commit to buying; a covered call adds no exposure.
            amount = Decimal(0) if leg.contract.right.is_call else leg_notional(leg)
        else:
            continue
        value[sector] = value.get(sector, Decimal(0)) + amount
    cap = nav * risk.max_sector_pct / _HUNDRED
    out = []
    for sector, amount in sorted(value.items()):
        amount = amount.quantize(Decimal("0.01"))
        out.append(
            LimitUsage(
                f"sector:{sector}",
                f"sector {sector}",
                amount,
                cap.quantize(Decimal("0.01")),
                _usage(max(amount, Decimal(0)), cap),  # a net short sector uses none
                check_sector(sector, amount, Decimal(0), nav, risk.max_sector_pct),
                sector in income_sectors,
            )
        )
    return out
