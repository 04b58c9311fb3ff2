"""Equity exposure of the book, the hedge underlying, leverage and the budget multiplier.

Exposure of one holding = market value × leverage factor × beta. Betas in the
reference data are to SPY, and so are the hedge ETFs' betas
(``hedging.underlying.static_betas``: SPY 1.00, QQQ 1.15, IWM 1.20). A
holding's beta to a hedge ETF U is therefore ``beta_to_SPY / beta_U_to_SPY``
(in a one-factor model, stock = beta_s x market and U = beta_U x market, so
the stock moves beta_s / beta_U for each 1 of U). So:

- ``spy_exposure`` = value x leverage x beta_to_SPY: SPY-equivalent dollars;
- exposure in U-dollars = ``spy_exposure / beta_U``: the dollars of U that
  move like the holding. A -20 % move of U costs 20 % of that.

A holding whose beta is unknown is taken to move one-for-one with the ETF it
maps to (its beta to SPY is that ETF's beta). Options (our hedges included)
and the symbols the caller names in ``hedge_symbols`` are never equity
exposure; short stock counts negative, as does a long inverse ETF.

Mapping a holding to an ETF: the ``tracks`` field of its reference data (an
index ETF such as TQQQ -> QQQ) when that ETF is a configured hedge ETF; a hedge
ETF held directly maps to itself; otherwise its sector through
``hedging.underlying.sector_etfs``, first choice first, skipping ETFs the caller
reports as unavailable (no usable chain), then ``unknown_sector_etf``.

The hedge underlying is the ETF with the largest exposure, except that the
preferred ETF (QQQ, the most liquid) is chosen when its exposure is at least
``preferred_min_ratio`` (0.8) of the largest. ETFs are compared in
SPY-equivalent dollars, so an ETF's own beta does not tilt the choice.
Leverage L = net exposure in underlying dollars / NAV.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import numpy as np

from alchemiser.domain.trading import AssetClass, Position
from alchemiser.market.reference import ReferenceData, SymbolInfo
from alchemiser.settings.hedging import ExposureMultiplier, HedgingSettings, Underlying

__all__ = [
    "EtfExposure",
    "ExposureReport",
    "PositionExposure",
    "compute_exposure",
    "exposure_multiplier",
    "map_to_etf",
    "rolling_beta",
]

_CENT = Decimal("0.01")
_RATIO = Decimal("0.000001")
_BETA_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class PositionExposure:
    """One equity holding's contribution."""

    symbol: str
    market_value: Decimal  # signed (negative when short)
    leverage: Decimal
    beta_to_spy: Decimal  # as used
    beta_source: Literal["reference", "etf"]  # "etf": unknown beta, moves with its ETF
    etf: str  # the hedge ETF it maps to
    spy_exposure: Decimal  # market value x leverage x beta to SPY (SPY-equivalent dollars)


@dataclass(frozen=True, slots=True)
class EtfExposure:
    """The holdings mapped to one hedge ETF."""

    etf: str
    beta: Decimal  # the ETF's beta to SPY
    spy_exposure: Decimal  # SPY-equivalent dollars
    exposure: Decimal  # the same in this ETF's dollars (spy_exposure / beta)
    positions: int


@dataclass(frozen=True, slots=True)
class ExposureReport:
    """Everything the evaluator needs to size a hedge and explain why."""

    nav: Decimal
    underlying: str | None  # None: no equity position
    underlying_beta: Decimal | None
    gross: Decimal  # sum of |exposure|, in underlying dollars
    net: Decimal  # sum of signed exposure, in underlying dollars
    leverage: Decimal  # net / NAV (0 when NAV <= 0)
    multiplier: Decimal  # budget multiplier for this leverage
    by_etf: Mapping[str, EtfExposure] = field(default_factory=dict)
    equity_position_count: int = 0
    positions: tuple[PositionExposure, ...] = ()
    excluded: tuple[str, ...] = ()  # options and hedge symbols left out


def exposure_multiplier(leverage: Decimal, settings: ExposureMultiplier) -> Decimal:
    """m = min(base + slope x max(0, L - start), maximum): 1.0x -> 1.0, 2.0x -> 1.5, 2.5x -> 1.5."""
    above = max(Decimal(0), leverage - settings.start_leverage)
    return min(settings.base + settings.slope * above, settings.maximum)


def rolling_beta(
    asset_closes: Sequence[Decimal], market_closes: Sequence[Decimal], settings: Underlying
) -> Decimal | None:
    """Least-squares beta of daily returns of an asset on the market's (SPY's), or None.

    Closes are one per session, oldest first, aligned. The last
    ``rolling_beta_window_sessions`` returns count; a return touching a
    missing (non-finite or non-positive) close is left out. None with fewer
    than ``rolling_beta_min_observations`` returns or a flat market: the
    caller keeps the static beta.
    """
    if len(asset_closes) != len(market_closes):
        raise ValueError(
            f"closes must be aligned: {len(asset_closes)} asset closes, {len(market_closes)} market"
        )
    closes = np.array(
        [[float(a), float(m)] for a, m in zip(asset_closes, market_closes, strict=True)],
        dtype=np.float64,
    ).reshape(-1, 2)
    good = np.asarray(np.isfinite(closes).all(axis=1) & (closes > 0).all(axis=1), dtype=np.bool_)
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = closes[1:] / closes[:-1] - 1.0
    returns = returns[good[1:] & good[:-1]][-settings.rolling_beta_window_sessions :]
    if len(returns) < max(settings.rolling_beta_min_observations, 2):
        return None
    asset, market = returns[:, 0], returns[:, 1]
    variance = float(np.var(market))
    if not variance > 0:
        return None
    beta = float(np.mean((asset - asset.mean()) * (market - market.mean()))) / variance
    return Decimal(repr(float(beta))).quantize(_BETA_PLACES)


def _etf_betas(settings: Underlying, overrides: Mapping[str, Decimal] | None) -> dict[str, Decimal]:
    betas = dict(settings.static_betas)
    for etf, beta in (overrides or {}).items():
        if not (beta.is_finite() and beta > 0):
            raise ValueError(f"ETF beta for {etf} must be a positive number, got {beta}")
        betas[etf] = beta
    return betas


def map_to_etf(info: SymbolInfo, settings: Underlying, unavailable: Collection[str] = ()) -> str:
    """The hedge ETF a holding maps to (module docstring: tracks, itself, sector, unknown)."""
    hedge_etfs = settings.static_betas.keys()
    if info.tracks in hedge_etfs:
        choices = [info.tracks]
    elif info.symbol in hedge_etfs:
        choices = [info.symbol]
    else:
        sector = info.sector
        choices = list(settings.sector_etfs.get(sector, [])) if sector is not None else []
    if settings.unknown_sector_etf not in choices:
        choices.append(settings.unknown_sector_etf)
    for etf in choices:
        if etf not in unavailable:
            return etf
    # Every choice lacks a chain: keep the first; the evaluator then fails closed on its data.
    return choices[0]


def _pick_underlying(by_etf: Mapping[str, EtfExposure], settings: Underlying) -> str | None:
    if not by_etf:
        return None
    # Largest SPY-equivalent exposure; ties go to the preferred ETF, then alphabetically.
    largest = min(
        by_etf.values(), key=lambda e: (-e.spy_exposure, e.etf != settings.preferred, e.etf)
    )
    preferred = by_etf.get(settings.preferred)
    if (
        preferred is not None
        and largest.spy_exposure > 0
        and preferred.spy_exposure >= settings.preferred_min_ratio * largest.spy_exposure
    ):
        return preferred.etf
    return largest.etf


def compute_exposure(
    positions: Sequence[Position],
    reference: ReferenceData,
    settings: HedgingSettings,
    nav: Decimal,
    hedge_symbols: Collection[str] = (),
    *,
    unavailable_etfs: Collection[str] = (),
    etf_betas: Mapping[str, Decimal] | None = None,
) -> ExposureReport:
    """Beta-adjusted equity exposure of ``positions``, the hedge underlying, L and m.

    ``unavailable_etfs``: hedge ETFs with no usable option chain today (their
    holdings fall back along the sector map). ``etf_betas``: rolling betas to
    SPY that replace the static ones when the caller has enough history.
    """
    if not nav.is_finite():
        raise ValueError(f"NAV must be a finite number, got {nav}")
    under = settings.underlying
    betas = _etf_betas(under, etf_betas)
    hedges = {s.upper() for s in hedge_symbols}
    rows: list[PositionExposure] = []
    excluded: list[str] = []
    for pos in positions:
        if (
            pos.is_option
            or pos.asset_class is not AssetClass.EQUITY
            or pos.symbol.upper() in hedges
        ):
            excluded.append(pos.symbol)
            continue
        if pos.qty == 0:
            continue
        info = reference.get(pos.symbol)
        etf = map_to_etf(info, under, unavailable_etfs)
        etf_beta = betas[etf]
        source: Literal["reference", "etf"] = "reference" if info.beta is not None else "etf"
        beta = info.beta if info.beta is not None else etf_beta
        rows.append(
            PositionExposure(
                symbol=pos.symbol,
                market_value=pos.market_value,
                leverage=info.leverage,
                beta_to_spy=beta,
                beta_source=source,
                etf=etf,
                spy_exposure=pos.market_value * info.leverage * beta,
            )
        )

    by_etf: dict[str, EtfExposure] = {}
    for etf in sorted({r.etf for r in rows}):
        mine = [r for r in rows if r.etf == etf]
        spy = sum((r.spy_exposure for r in mine), Decimal(0))
        by_etf[etf] = EtfExposure(
            etf=etf,
            beta=betas[etf],
            spy_exposure=spy.quantize(_CENT),
            exposure=(spy / betas[etf]).quantize(_CENT),
            positions=len(mine),
        )

    underlying = _pick_underlying(by_etf, under)
    u_beta = betas[underlying] if underlying is not None else None
    net = gross = Decimal(0)
    if u_beta is not None:
        net = sum((r.spy_exposure for r in rows), Decimal(0)) / u_beta
        gross = sum((abs(r.spy_exposure) for r in rows), Decimal(0)) / u_beta
    leverage = (net / nav).quantize(_RATIO) if nav > 0 else Decimal(0)
    return ExposureReport(
        nav=nav,
        underlying=underlying,
        underlying_beta=u_beta,
        gross=gross.quantize(_CENT),
        net=net.quantize(_CENT),
        leverage=leverage,
        multiplier=exposure_multiplier(leverage, settings.exposure_multiplier),
        by_etf=by_etf,
        equity_position_count=len(rows),
        positions=tuple(rows),
        excluded=tuple(excluded),
    )
