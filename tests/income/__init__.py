"""Tests of the income decision layer; the builders below are shared by its modules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.domain.trading import Greeks, OptionSnapshot
from alchemiser.income.candidates import Candidate, Kind, SymbolFacts
from alchemiser.market.reference import SymbolInfo

AS_OF = date(2026, 2, 2)
NOW = datetime(2026, 2, 2, 15, 0, tzinfo=UTC)


def snapshot(
    right: OptionRight = OptionRight.PUT,
    strike: Decimal | str | int = 100,
    dte: int = 73,
    bid: Decimal | str = "1.00",
    ask: Decimal | str | None = None,
    delta: float | None = -0.25,
    iv: float | None = 0.30,
    open_interest: int | None = 1000,
    volume: int | None = 50,
    root: str = "XYZ",
    timestamp: datetime = NOW,
) -> OptionSnapshot:
    """A real snapshot; ``ask`` defaults to ``bid`` (a zero-width quote)."""
    bid_d = Decimal(bid)
    return OptionSnapshot(
        contract=OptionContract(
            root=root, expiry=AS_OF + timedelta(days=dte), right=right, strike=Decimal(strike)
        ),
        bid=bid_d,
        ask=Decimal(ask) if ask is not None else bid_d,
        bid_size=10,
        ask_size=10,
        timestamp=timestamp,
        implied_volatility=iv,
        greeks=None if delta is None else Greeks(delta, 0.02, -0.03, 0.12, 0.01),
        open_interest=open_interest,
        volume=volume,
    )


def candidate(kind: Kind, spot: Decimal | str | int = 100, **quote: object) -> Candidate:
    """A candidate of ``kind`` on XYZ; ``quote`` goes to ``snapshot`` (right set by kind)."""
    right = OptionRight.CALL if kind == "covered_call" else OptionRight.PUT
    quote.setdefault("delta", 0.25 if kind == "covered_call" else -0.25)
    return Candidate.of(kind, snapshot(right, **quote), Decimal(spot), AS_OF)  # type: ignore[arg-type]


def facts(
    *,
    sector: str | None = "Technology",
    rating: str | None = "A",
    next_earnings: date | None = None,
    spot: Decimal | str | int = 100,
    iv_percentile: Decimal | str | None = "40",
    put_call_ratio: Decimal | str | None = "0.80",
    sector_put_call_average: Decimal | str | None = "1.00",
    shares_free: int = 100,
    cost_basis: Decimal | str | None = "90",
    cash_free: Decimal | str | int = 1_000_000,
    sector_csp_notional: Decimal | str | int = 0,
    csp_capacity: Decimal | str | int = 1_000_000,
    nav: Decimal | str | int = 1_000_000,
) -> SymbolFacts:
    """Facts about XYZ that pass every rule for the default candidates unless overridden."""

    def d(value: Decimal | str | int | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    return SymbolFacts(
        symbol="XYZ",
        info=SymbolInfo(
            symbol="XYZ", sector=sector, credit_rating=rating, next_earnings=next_earnings
        ),
        spot=Decimal(spot),
        iv_percentile=d(iv_percentile),
        put_call_ratio=d(put_call_ratio),
        sector_put_call_average=d(sector_put_call_average),
        shares_free=shares_free,
        cost_basis=d(cost_basis),
        cash_free=Decimal(cash_free),
        sector_csp_notional=Decimal(sector_csp_notional),
        csp_capacity=Decimal(csp_capacity),
        nav=Decimal(nav),
    )
