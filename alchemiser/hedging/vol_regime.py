"""The volatility regime: the 30-day index, its tier, rich IV, and ATM IV percentiles.

Tier boundaries (``hedging.vol_tiers``): low when index < low_below (18);
high when index > high_above (28); mid otherwise, both ends included
(18 and 28 are mid). Rich when index > rich_above (35; 35 itself is not rich).
Rich is a sub-case of high.

Source: the Cboe VIX method over the SPY option chain (``domain.vol_index``),
after dropping bad quotes (non-finite, negative bid, no ask, crossed, stale).
The VIXY fallback (price x ``vol_index.vixy_scale``) is used only when the
user has set a scale. With neither, there is no regime: the caller skips
(fail closed), it never guesses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

import numpy as np

from alchemiser.domain.options import OptionRight
from alchemiser.domain.trading import OptionSnapshot
from alchemiser.domain.vol_index import NEW_YORK, OptionChain, VolIndexError, vix_index
from alchemiser.settings.hedging import HedgingSettings

__all__ = [
    "Tier",
    "VolRegime",
    "VolRegimeError",
    "atm_iv",
    "classify",
    "current_regime",
    "iv_percentile",
    "quote_problem",
    "regime_from_chain",
    "regime_from_vixy",
]

Tier = Literal["low", "mid", "high"]

_INDEX_PLACES = Decimal("0.0001")
_PCT_PLACES = Decimal("0.01")
_IV_PLACES = Decimal("0.000001")


class VolRegimeError(ValueError):
    """No volatility index could be obtained: the evaluation must skip."""


@dataclass(frozen=True, slots=True)
class VolRegime:
    """The index (volatility points), its tier, whether IV is rich, and where it came from."""

    index: Decimal
    tier: Tier
    rich: bool
    source: str  # "spy_chain" (Cboe method on the chain), "vixy" (fallback) or "given"
    detail: str = ""


def classify(index: Decimal, settings: HedgingSettings, source: str = "given") -> VolRegime:
    """Tier and richness of ``index``: low < 18 <= mid <= 28 < high; rich > 35."""
    if not (index.is_finite() and index >= 0):
        raise ValueError(f"volatility index must be a finite number >= 0, got {index}")
    tiers = settings.vol_tiers
    tier: Tier
    if index < tiers.low_below:
        tier = "low"
    elif index > tiers.high_above:
        tier = "high"
    else:
        tier = "mid"
    return VolRegime(index=index, tier=tier, rich=index > tiers.rich_above, source=source)


def quote_problem(snap: OptionSnapshot, now: datetime, max_age_seconds: int) -> str | None:
    """Why a quote cannot be used at all (None when it can): the checks every consumer shares.

    A zero bid is not a problem here (the Cboe method reads zero bids as the
    end of a strip; the liquidity gates reject them for trading).
    """
    bid, ask = snap.bid, snap.ask
    if not (bid.is_finite() and ask.is_finite()) or bid < 0 or ask <= 0:
        return "missing_quote"
    if bid > ask:
        return "crossed"
    if now - snap.timestamp > timedelta(seconds=max_age_seconds):
        return "stale_quote"
    return None


def _chain_of(snapshots: Sequence[OptionSnapshot]) -> OptionChain:
    return OptionChain(
        expiry=np.array([s.contract.expiry for s in snapshots], dtype="datetime64[D]"),
        strike=np.array([float(s.contract.strike) for s in snapshots], dtype=np.float64),
        is_call=np.array([s.contract.right is OptionRight.CALL for s in snapshots], dtype=bool),
        bid=np.array([float(s.bid) for s in snapshots], dtype=np.float64),
        ask=np.array([float(s.ask) for s in snapshots], dtype=np.float64),
    )


def regime_from_chain(
    snapshots: Sequence[OptionSnapshot],
    valuation: datetime,
    rate: float,
    settings: HedgingSettings,
) -> VolRegime:
    """The regime from the configured underlying's chain (Cboe method), bad quotes dropped.

    Raises VolRegimeError when the chain cannot give an index.
    """
    underlying = settings.vol_index.chain_underlying
    max_age = settings.liquidity.max_quote_age_seconds
    dropped: dict[str, int] = {}
    usable: list[OptionSnapshot] = []
    for snap in snapshots:
        problem = (
            "other_underlying"
            if snap.contract.root != underlying
            else quote_problem(snap, valuation, max_age)
        )
        if problem is None:
            usable.append(snap)
        else:
            dropped[problem] = dropped.get(problem, 0) + 1
    note = ", ".join(f"{n} {why}" for why, n in sorted(dropped.items())) or "none"
    if not usable:
        raise VolRegimeError(f"no usable {underlying} option quotes (dropped: {note})")
    try:
        index = vix_index(
            _chain_of(usable), valuation, rate, target_days=float(settings.vol_index.horizon_days)
        )
    except VolIndexError as exc:
        raise VolRegimeError(f"{underlying} chain: {exc} (dropped: {note})") from None
    if not (math.isfinite(index.value) and index.value >= 0):
        raise VolRegimeError(f"{underlying} chain gave a non-finite index")
    far = f"/{index.far.expiry.isoformat()}" if index.far is not None else ""
    regime = classify(
        Decimal(repr(float(index.value))).quantize(_INDEX_PLACES), settings, source="spy_chain"
    )
    detail = (
        f"{underlying} chain, {index.method} {index.near.expiry.isoformat()}{far}, "
        f"{len(usable)} quotes (dropped: {note})"
    )
    return VolRegime(regime.index, regime.tier, regime.rich, regime.source, detail)


def regime_from_vixy(price: Decimal, settings: HedgingSettings) -> VolRegime:
    """Fallback: VIXY price x ``vol_index.vixy_scale``; an error unless the user set a scale."""
    scale = settings.vol_index.vixy_scale
    if scale is None:
        raise VolRegimeError("the VIXY fallback is off (hedging.vol_index.vixy_scale is not set)")
    if not (price.is_finite() and price > 0):
        raise VolRegimeError(f"VIXY price must be a positive number, got {price}")
    regime = classify((price * scale).quantize(_INDEX_PLACES), settings, source="vixy")
    return VolRegime(
        regime.index, regime.tier, regime.rich, regime.source, f"VIXY {price} x {scale}"
    )


def current_regime(
    snapshots: Sequence[OptionSnapshot],
    valuation: datetime,
    rate: float,
    settings: HedgingSettings,
    vixy_price: Decimal | None = None,
) -> VolRegime:
    """The chain's regime, else the VIXY fallback when configured; VolRegimeError if neither."""
    try:
        return regime_from_chain(snapshots, valuation, rate, settings)
    except VolRegimeError as primary:
        if settings.vol_index.vixy_scale is None or vixy_price is None:
            raise
        try:
            fallback = regime_from_vixy(vixy_price, settings)
        except VolRegimeError as secondary:
            raise VolRegimeError(f"{primary}; fallback: {secondary}") from None
        return VolRegime(
            fallback.index,
            fallback.tier,
            fallback.rich,
            fallback.source,
            f"{fallback.detail} (chain unusable: {primary})",
        )


def iv_percentile(
    history: Sequence[Decimal], current: Decimal, settings: HedgingSettings
) -> Decimal | None:
    """Percent of the trailing window's ATM IVs strictly below ``current`` (0-100).

    ``history`` is oldest first and excludes today's ``current``; only the last
    ``iv_percentile.window_sessions`` finite values count. None (unknown,
    never guessed) with fewer than ``iv_percentile.min_observations``.
    """
    if not current.is_finite():
        return None
    config = settings.iv_percentile
    window = [h for h in history if h.is_finite()][-config.window_sessions :]
    if len(window) < config.min_observations:
        return None
    below = sum(1 for h in window if h < current)
    return (Decimal(100) * below / len(window)).quantize(_PCT_PLACES)


def _atm_of_expiry(snaps: list[OptionSnapshot], spot: float) -> float | None:
    """IV at the spot: put/call average per strike, linear between the strikes around spot."""
    by_strike: dict[float, list[float]] = {}
    for s in snaps:
        by_strike.setdefault(float(s.contract.strike), []).append(float(s.implied_volatility or 0))
    strikes = sorted(by_strike)
    below = [k for k in strikes if k <= spot]
    above = [k for k in strikes if k >= spot]
    if not below or not above:
        return None  # spot outside the listed strikes: no extrapolation
    k1, k2 = below[-1], above[0]
    v1 = sum(by_strike[k1]) / len(by_strike[k1])
    v2 = sum(by_strike[k2]) / len(by_strike[k2])
    if k1 == k2:
        return v1
    w = (spot - k1) / (k2 - k1)
    return v1 + w * (v2 - v1)


def atm_iv(
    snapshots: Sequence[OptionSnapshot], spot: Decimal, target_dte: int, now: datetime
) -> Decimal | None:
    """At-the-money implied volatility at ``target_dte`` days (0.20 = 20 %), or None.

    Per expiry, the IV at the spot (put and call averaged, linear in strike);
    across expiries, total variance is interpolated linearly in time between
    the two around the target; outside them the nearest expiry's IV is used.
    Quotes without a finite positive IV, a positive bid or an uncrossed ask
    are ignored; expiries today or earlier are ignored.
    """
    today: date = now.astimezone(NEW_YORK).date()
    groups: dict[int, list[OptionSnapshot]] = {}
    for s in snapshots:
        iv = s.implied_volatility
        ok_iv = iv is not None and math.isfinite(iv) and iv > 0
        dte = (s.contract.expiry - today).days
        if ok_iv and dte > 0 and s.bid.is_finite() and s.ask.is_finite() and 0 < s.bid <= s.ask:
            groups.setdefault(dte, []).append(s)
    points = [
        (dte, vol)
        for dte in sorted(groups)
        if (vol := _atm_of_expiry(groups[dte], float(spot))) is not None
    ]
    if not points:
        return None
    before = [p for p in points if p[0] <= target_dte]
    after = [p for p in points if p[0] >= target_dte]
    if not before:
        vol = after[0][1]
    elif not after:
        vol = before[-1][1]
    else:
        (t1, v1), (t2, v2) = before[-1], after[0]
        if t1 == t2:
            vol = v1
        else:
            w = (target_dte - t1) / (t2 - t1)
            total = (1 - w) * v1 * v1 * t1 + w * v2 * v2 * t2
            vol = math.sqrt(total / target_dte)
    return Decimal(repr(float(vol))).quantize(_IV_PLACES)
