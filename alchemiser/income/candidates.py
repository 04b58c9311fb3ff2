"""An option the income strategy could sell, what is known about its underlying, and its size.

A ``Candidate`` is one quoted option seen as a covered call or a cash-secured
put on a given day, with the figures every screen and score reads derived
once by ``Candidate.of``:

* ``dte``: calendar days from ``as_of`` to expiry;
* ``mid``: (bid + ask) / 2;
* ``annual_yield_pct``: mid / collateral per share × 365 / dte × 100, where the
  collateral is the strike for a put (the cash that secures it) and the spot
  for a call (the shares that cover it); 2 decimals, and 0 when it cannot be
  annualised (no days left, no collateral);
* ``spread_pct``: (ask − bid) / mid × 100, 2 decimals (200 when there is no mid);
* ``delta`` and ``iv``: from the quote, ``None`` when missing or not a number.

``SymbolFacts`` is what the service gathered about the underlying for one
screen run; ``contracts_for`` sizes a trade from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Literal

from alchemiser.domain.trading import OptionSnapshot
from alchemiser.market.reference import SymbolInfo
from alchemiser.settings.income import IncomeSettings
from alchemiser.settings.risk import RiskSettings

__all__ = [
    "SHARES_PER_CONTRACT",
    "Candidate",
    "Kind",
    "SymbolFacts",
    "contracts_by_cash",
    "contracts_by_shares",
    "contracts_by_size",
    "contracts_for",
]

Kind = Literal["covered_call", "cash_secured_put"]

SHARES_PER_CONTRACT = 100
_HUNDRED = Decimal(100)
_DAYS_PER_YEAR = Decimal(365)
_CENT = Decimal("0.01")
# A quote without a positive mid has no meaningful width: report it as the widest possible.
_NO_MID_SPREAD_PCT = Decimal(200)


def _finite(value: float | None) -> float | None:
    """``value`` if it is a finite float, else None."""
    if value is None or not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class Candidate:
    """One option considered for selling; build it with ``Candidate.of``."""

    kind: Kind
    snapshot: OptionSnapshot
    spot: Decimal
    as_of: date
    dte: int
    mid: Decimal
    delta: float | None
    iv: float | None
    annual_yield_pct: Decimal
    spread_pct: Decimal

    @classmethod
    def of(cls, kind: Kind, snapshot: OptionSnapshot, spot: Decimal, as_of: date) -> Candidate:
        contract = snapshot.contract
        dte = (contract.expiry - as_of).days
        mid = snapshot.mid
        collateral = contract.strike if kind == "cash_secured_put" else spot
        if dte > 0 and collateral > 0 and mid > 0:
            annual = mid / collateral * _DAYS_PER_YEAR / dte * _HUNDRED
            annual_yield = annual.quantize(_CENT, rounding=ROUND_HALF_UP)
        else:
            annual_yield = Decimal("0.00")
        if mid > 0:
            spread = ((snapshot.ask - snapshot.bid) / mid * _HUNDRED).quantize(
                _CENT, rounding=ROUND_HALF_UP
            )
        else:
            spread = _NO_MID_SPREAD_PCT
        greeks = snapshot.greeks
        iv = _finite(snapshot.implied_volatility)
        return cls(
            kind=kind,
            snapshot=snapshot,
            spot=spot,
            as_of=as_of,
            dte=dte,
            mid=mid,
            delta=_finite(greeks.delta) if greeks is not None else None,
            iv=iv if iv is not None and iv > 0 else None,
            annual_yield_pct=annual_yield,
            spread_pct=spread,
        )

    @property
    def symbol(self) -> str:
        """The OCC symbol of the option."""
        return self.snapshot.symbol

    @property
    def underlying(self) -> str:
        return self.snapshot.contract.root

    @property
    def strike(self) -> Decimal:
        return self.snapshot.contract.strike

    @property
    def expiry(self) -> date:
        return self.snapshot.contract.expiry


@dataclass(frozen=True, slots=True)
class SymbolFacts:
    """What the service gathered about one underlying for a screen run."""

    symbol: str
    info: SymbolInfo
    spot: Decimal
    iv_percentile: Decimal | None  # None: fewer than risk.min_history_sessions observations
    put_call_ratio: Decimal | None
    sector_put_call_average: Decimal | None
    shares_free: int = 0  # calls: shares held not already covered
    cost_basis: Decimal | None = None  # calls: per share (wheel basis, else the broker's average)
    cash_free: Decimal = Decimal(0)  # puts: cash − cash reserved by open short puts
    sector_csp_notional: Decimal = Decimal(0)  # puts: strike×100×contracts of open short puts
    csp_capacity: Decimal = Decimal(0)  # puts: the base of the sector-share rule (account cash)
    nav: Decimal = Decimal(0)
    # puts: other names of the sector with a known put-call ratio; 0 = nothing to compare with
    sector_peers: int = 1


def _floor(value: Decimal) -> int:
    """The largest integer ≤ ``value``, never below 0."""
    return max(0, int(value.to_integral_value(rounding=ROUND_FLOOR)))


def contracts_by_size(price_per_share: Decimal, nav: Decimal, risk: RiskSettings) -> int:
    """Contracts whose notional (``price_per_share`` × 100 each) fits ``max_trade_pct`` % of NAV."""
    if price_per_share <= 0:
        return 0
    budget = nav * risk.max_trade_pct / _HUNDRED
    return _floor(budget / (price_per_share * SHARES_PER_CONTRACT))


def contracts_by_shares(shares_free: int) -> int:
    """Covered calls the free shares can cover."""
    return max(0, shares_free) // SHARES_PER_CONTRACT


def contracts_by_cash(strike: Decimal, cash_free: Decimal, income: IncomeSettings) -> int:
    """Puts the free cash secures at ``cash_cover_pct`` % of strike × 100 each."""
    if strike <= 0:
        return 0
    cover = income.cash_secured_put.cash_cover_pct / _HUNDRED
    return _floor(cash_free / cover / (strike * SHARES_PER_CONTRACT))


def contracts_for(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> int:
    """How many contracts to sell: the free shares or free cash, capped by the per-trade limit.

    Calls: free shares // 100, capped so spot × 100 × n ≤ NAV × max_trade_pct / 100.
    Puts: floor(min(cash_free / (cash_cover_pct / 100), NAV × max_trade_pct / 100)
    / (strike × 100)). Never negative.
    """
    if candidate.kind == "covered_call":
        return min(
            contracts_by_shares(facts.shares_free),
            contracts_by_size(candidate.spot, facts.nav, risk),
        )
    strike = candidate.strike
    return min(
        contracts_by_cash(strike, facts.cash_free, income),
        contracts_by_size(strike, facts.nav, risk),
    )
