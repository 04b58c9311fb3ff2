"""Which contract to buy: tenor by regime, liquidity gates, scenario payoff, scoring.

Outright put (tail_first), in order:

1. Gates, each contract counted at the first it fails (``GATES``): a put of
   the underlying; DTE within ``liquidity.min_dte..max_dte`` (14-180); inside
   the tenor window; strike within 75-95 % of spot; bid and ask present
   (bid > 0), not crossed, not stale; open interest >= 1000; volume >= 100;
   mid >= $0.05; spread <= 5 % of mid and <= $0.10; an implied volatility (the
   quote's, else implied from the mid); scenario payoff multiple >= 3x. Every
   bound is inclusive (a contract exactly at a limit passes).
2. Tenor window by regime (puts): rich (index > 35) -> ``tenor.rich_*``
   (120-180 DTE); low tier (< 18) -> ``tenor.low_vol_*`` (60-90); otherwise the
   template's target DTE +/- ``tenor.dte_window_days`` (90 +/- 15).
3. Around the target: expiries are ranked by distance to the target DTE
   (ties to the longer); with IV percentile above
   ``tenor.prefer_longer_above_iv_percentile`` (70) the longest come first.
   In the best-ranked expiry that still has candidates, the candidates either
   side of the target |delta| (the nearest at or above it and the nearest at
   or below it) are scored. The score is kept to these on purpose: left free
   over the whole window it would always buy the shortest, farthest-out put
   (most gamma per dollar, biggest multiple in an instantaneous shock), which
   is the one that rolls soonest.
4. Score: w_c x convexity + w_p x payoff multiple, each divided by its best
   value among the candidates (so both lie in 0..1); convexity is gamma /
   (mid x 100) and the multiple is (scenario value - premium) / premium at
   the template scenario (spot -20 %, IV +10 points, repriced by
   ``payoff.reprice``, not intrinsic). When a candidate lacks greeks from the
   feed, the fallback score ranks them instead: -(w_d x |delta - target| /
   target + w_t x |DTE - target| / target + w_s x spread / mid), with the
   delta from the model at the quote's IV.

Put spread (smoothing): legs pass the same gates but the payoff multiple;
the tenor window is the template's target DTE +/- window (the rich-vol rules
are for outright puts only). In each expiry, best-ranked first: the long leg
nearest 0.30 |delta|, the short leg nearest 0.10 among lower strikes; natural
and mid debit must be positive, and the spread must pay the minimum multiple
at the protection floor's scenario (-20 %, as PARAMETERS.md states the 3x
rule). At its own -10 % scenario a spread is capped well below 3x in most
regimes, so the filter is not applied there; that multiple is reported.

Premium is what the order may pay at most: min(natural, mid x (1 +
``orders.max_slippage_pct``/100)) rounded up to the cent, x 100. Payoffs are
net of that premium. Nothing is invented: a contract without a usable quote
is gated out and counted, and an empty result says which gate removed what.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Literal

import numpy as np

from alchemiser.domain.implied_vol import implied_vol
from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.domain.pricing import bsm_greeks
from alchemiser.domain.trading import Greeks, OptionSnapshot
from alchemiser.domain.vol_index import NEW_YORK
from alchemiser.hedging.payoff import CONTRACT_MULTIPLIER, HedgeLeg, reprice, years_to_expiry
from alchemiser.hedging.sizing import (
    Candidate,
    EffectiveTemplate,
    Structure,
    effective_template,
    floor_scenario,
)
from alchemiser.hedging.vol_regime import VolRegime, quote_problem
from alchemiser.settings.hedging import HedgingSettings, TemplateName

__all__ = [
    "GATES",
    "NoSuitableContract",
    "SelectedLeg",
    "Selection",
    "select_put",
    "select_spread",
    "tenor_window",
]

# Gate names in the order they are applied (stable: they go into logs and the audit trail).
GATES = (
    "other_underlying",
    "not_put",
    "dte_range",
    "tenor_window",
    "strike_range",
    "missing_quote",
    "crossed",
    "stale_quote",
    "open_interest",
    "volume",
    "min_mid",
    "spread_pct",
    "spread_abs",
    "no_implied_vol",
    "payoff_multiple",
)
# Spread-only outcomes; these count expiries tried (pairs), the gates count contracts.
SPREAD_OUTCOMES = ("no_short_leg", "non_positive_debit", "spread_payoff_multiple")

_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)
_SCORE_PLACES = Decimal("0.000001")
_M = Decimal(CONTRACT_MULTIPLIER)


@dataclass(frozen=True, slots=True)
class SelectedLeg:
    """One chosen option with the figures it was chosen on."""

    snapshot: OptionSnapshot
    side: int  # +1 bought, -1 sold
    iv: float
    greeks: Greeks
    greeks_source: Literal["feed", "model"]

    @property
    def contract(self) -> OptionContract:
        return self.snapshot.contract

    @property
    def symbol(self) -> str:
        return self.snapshot.symbol


@dataclass(frozen=True, slots=True)
class Selection:
    """The contract (or spread) to buy and why. Prices per share unless named per contract."""

    template: TemplateName
    structure: Structure
    underlying: str
    legs: tuple[SelectedLeg, ...]  # the long leg first
    expiry: date
    dte: int
    mid: Decimal  # net mid (debit for a spread)
    natural: Decimal  # ask, or long ask - short bid
    max_limit_price: Decimal  # the order must never pay more than this per share
    premium_per_contract: Decimal  # max_limit_price x 100
    scenario_value_per_contract: Decimal  # value at the template scenario
    payoff_per_contract: Decimal  # scenario value - premium
    payoff_multiple: Decimal  # payoff / premium
    floor_payoff_per_contract: Decimal  # at the protection floor's scenario, net of premium
    greeks: Greeks  # net per share (long minus short)
    score: Decimal
    scoring: Literal["convexity_payoff", "fallback", "spread"]
    width: Decimal | None  # strike difference of a spread
    why: str
    counts_by_gate: Mapping[str, int] = field(default_factory=dict)

    def candidate(self) -> Candidate:
        """What the sizer needs from this selection."""
        return Candidate(
            premium_per_contract=self.premium_per_contract,
            payoff_per_contract=self.payoff_per_contract,
            floor_payoff_per_contract=self.floor_payoff_per_contract,
        )

    def hedge_legs(self, contracts: int) -> tuple[HedgeLeg, ...]:
        """The legs as the hedge book will hold them after buying ``contracts``."""
        return tuple(
            HedgeLeg(leg.contract, leg.side * contracts, iv=leg.iv, mark=leg.snapshot.mid)
            for leg in self.legs
        )


@dataclass(frozen=True, slots=True)
class NoSuitableContract:
    """Nothing passed: why, and how many contracts each gate removed."""

    reason: str
    counts_by_gate: Mapping[str, int]
    considered: int


@dataclass(slots=True)
class _Row:
    """A contract that passed the quote gates, with its model figures."""

    snap: OptionSnapshot
    dte: int
    mid: Decimal
    spread: Decimal
    iv: float = math.nan
    delta: float = math.nan  # |delta|
    greeks: Greeks | None = None
    source: Literal["feed", "model"] = "feed"
    max_limit: Decimal = Decimal(0)
    shocked: float = math.nan  # per share at the template scenario
    floor_shocked: float = math.nan  # per share at the floor scenario


def tenor_window(
    settings: HedgingSettings, regime: VolRegime, template: EffectiveTemplate
) -> tuple[int, int]:
    """DTE range to buy in (inclusive), within the liquidity gate's range."""
    tenor = settings.tenor
    if template.structure == "put" and regime.rich:
        lo, hi = tenor.rich_min_dte, tenor.rich_max_dte
    elif template.structure == "put" and regime.tier == "low":
        lo, hi = tenor.low_vol_min_dte, tenor.low_vol_max_dte
    else:
        lo = template.target_dte - tenor.dte_window_days
        hi = template.target_dte + tenor.dte_window_days
    return max(lo, settings.liquidity.min_dte), min(hi, settings.liquidity.max_dte)


def _prefers_longer(settings: HedgingSettings, iv_percentile: Decimal | None) -> bool:
    threshold = settings.tenor.prefer_longer_above_iv_percentile
    return iv_percentile is not None and iv_percentile > threshold


def _max_limit(mid: Decimal, natural: Decimal, settings: HedgingSettings) -> Decimal:
    """The most an order may pay: never above natural, never more than max slippage over mid."""
    slipped = (mid * (_HUNDRED + settings.orders.max_slippage_pct) / _HUNDRED).quantize(
        _CENT, rounding=ROUND_CEILING
    )
    return min(natural, slipped)


def _gate(
    snap: OptionSnapshot,
    underlying: str,
    spot: Decimal,
    now: datetime,
    today: date,
    window: tuple[int, int],
    template: EffectiveTemplate,
    settings: HedgingSettings,
) -> str | _Row:
    """The first gate ``snap`` fails, or its row when it passes the quote and liquidity gates."""
    contract = snap.contract
    liq = settings.liquidity
    if contract.root != underlying:
        return "other_underlying"
    if contract.right is not OptionRight.PUT:
        return "not_put"
    dte = (contract.expiry - today).days
    if not liq.min_dte <= dte <= liq.max_dte:
        return "dte_range"
    if not window[0] <= dte <= window[1]:
        return "tenor_window"
    strike = contract.strike
    low = spot * template.min_strike_pct_of_spot / _HUNDRED
    high = spot * template.max_strike_pct_of_spot / _HUNDRED
    if not low <= strike <= high:
        return "strike_range"
    bid, ask = snap.bid, snap.ask
    if not (bid.is_finite() and ask.is_finite()) or bid <= 0:
        return "missing_quote"
    problem = quote_problem(snap, now, liq.max_quote_age_seconds)
    if problem is not None:
        return problem
    if snap.open_interest is None or snap.open_interest < liq.min_open_interest:
        return "open_interest"
    if snap.volume is None or snap.volume < liq.min_volume:
        return "volume"
    mid = snap.mid
    if mid < liq.min_mid:
        return "min_mid"
    spread = ask - bid
    if spread * _HUNDRED > liq.max_spread_pct_of_mid * mid:
        return "spread_pct"
    if spread > liq.max_spread:
        return "spread_abs"
    return _Row(snap=snap, dte=dte, mid=mid, spread=spread)


def _feed_greeks(snap: OptionSnapshot) -> Greeks | None:
    g = snap.greeks
    if g is None or not all(math.isfinite(x) for x in (g.delta, g.gamma)):
        return None
    return g


def _model_inputs(
    rows: list[_Row],
    spot: Decimal,
    now: datetime,
    rate: float,
    div_yield: float,
    counts: dict[str, int],
    settings: HedgingSettings,
) -> list[_Row]:
    """Fill IV (quote's, else implied from mid), greeks (feed's, else model) and max limit.

    Rows without a usable IV are dropped and counted as ``no_implied_vol``.
    """
    if not rows:
        return []
    strikes = np.array([float(r.snap.contract.strike) for r in rows])
    years = np.array([years_to_expiry(r.snap.contract.expiry, now) for r in rows])
    quoted = np.array(
        [
            r.snap.implied_volatility if r.snap.implied_volatility is not None else np.nan
            for r in rows
        ],
        dtype=np.float64,
    )
    missing = ~(np.isfinite(quoted) & (quoted > 0))
    if missing.any():
        mids = np.array([float(r.mid) for r in rows])
        solved = implied_vol(mids, float(spot), strikes, years, rate, div_yield, False).vol
        quoted = np.where(missing, solved, quoted)
    model = bsm_greeks(float(spot), strikes, years, rate, div_yield, quoted, False)
    kept: list[_Row] = []
    for n, row in enumerate(rows):
        iv = float(quoted[n])
        if not (math.isfinite(iv) and iv > 0):
            counts["no_implied_vol"] += 1
            continue
        row.iv = iv
        feed = _feed_greeks(row.snap)
        if feed is not None:
            row.greeks, row.source = feed, "feed"
        else:
            row.greeks = Greeks(
                delta=float(model.delta[n]),
                gamma=float(model.gamma[n]),
                theta=float(model.theta[n]),
                vega=float(model.vega[n]),
                rho=float(model.rho[n]),
            )
            row.source = "model"
        row.delta = abs(row.greeks.delta)
        row.max_limit = _max_limit(row.mid, row.snap.ask, settings)
        kept.append(row)
    return kept


def _shock(
    rows: list[_Row],
    spot: Decimal,
    now: datetime,
    rate: float,
    div_yield: float,
    template: EffectiveTemplate,
    settings: HedgingSettings,
) -> None:
    """Per-share values of each row at the template scenario and at the floor scenario."""
    if not rows:
        return
    strikes = [float(r.snap.contract.strike) for r in rows]
    years = [years_to_expiry(r.snap.contract.expiry, now) for r in rows]
    ivs = [r.iv for r in rows]
    _, shocked = reprice(
        float(spot),
        strikes,
        years,
        rate,
        div_yield,
        ivs,
        False,
        float(template.scenario_move_pct),
        float(template.scenario_vol_shift_points),
    )
    floor_move, floor_shift = floor_scenario(settings)
    _, at_floor = reprice(
        float(spot),
        strikes,
        years,
        rate,
        div_yield,
        ivs,
        False,
        float(floor_move),
        float(floor_shift),
    )
    for n, row in enumerate(rows):
        row.shocked = float(shocked[n])
        row.floor_shocked = float(at_floor[n])


def _money(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(_CENT)


def _ranked_expiries(rows: list[_Row], target_dte: int, longer_first: bool) -> list[int]:
    dtes = sorted({r.dte for r in rows})
    if longer_first:
        return sorted(dtes, reverse=True)
    return sorted(dtes, key=lambda d: (abs(d - target_dte), -d))


def _around(rows: list[_Row], target: float) -> list[_Row]:
    """The rows nearest ``target`` |delta| from above and from below (one if it is exact)."""
    above = [r for r in rows if r.delta >= target]
    below = [r for r in rows if r.delta <= target]
    picked: list[_Row] = []
    if above:
        picked.append(min(above, key=lambda r: (r.delta, r.snap.contract.strike)))
    if below:
        best = max(below, key=lambda r: (r.delta, r.snap.contract.strike))
        if not picked or best is not picked[0]:
            picked.append(best)
    return picked


def _net_greeks(legs: Sequence[tuple[_Row, int]]) -> Greeks:
    parts = [(r.greeks, side) for r, side in legs if r.greeks is not None]
    return Greeks(
        delta=sum(g.delta * s for g, s in parts),
        gamma=sum(g.gamma * s for g, s in parts),
        theta=sum(g.theta * s for g, s in parts),
        vega=sum(g.vega * s for g, s in parts),
        rho=sum(g.rho * s for g, s in parts),
    )


def _gamma(row: _Row) -> float:
    assert row.greeks is not None  # set for every row that survives _model_inputs
    return row.greeks.gamma


def _leg(row: _Row, side: int) -> SelectedLeg:
    assert row.greeks is not None
    return SelectedLeg(row.snap, side, row.iv, row.greeks, row.source)


def _screen(
    chain: Sequence[OptionSnapshot],
    spot: Decimal,
    now: datetime,
    rate: float,
    div_yield: float,
    window: tuple[int, int],
    template: EffectiveTemplate,
    settings: HedgingSettings,
    underlying: str | None,
) -> tuple[str, list[_Row], dict[str, int]]:
    """Apply the gates up to the implied volatility; returns the underlying, survivors, counts."""
    if not (spot.is_finite() and spot > 0):
        raise ValueError(f"spot must be a positive number, got {spot}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    name = underlying or (chain[0].contract.root if chain else "")
    today = now.astimezone(NEW_YORK).date()
    counts = dict.fromkeys(GATES, 0)
    rows: list[_Row] = []
    for snap in chain:
        outcome = _gate(snap, name, spot, now, today, window, template, settings)
        if isinstance(outcome, str):
            counts[outcome] += 1
        else:
            rows.append(outcome)
    rows = _model_inputs(rows, spot, now, rate, div_yield, counts, settings)
    _shock(rows, spot, now, rate, div_yield, template, settings)
    return name, rows, counts


def _nothing(what: str, counts: Mapping[str, int], considered: int) -> NoSuitableContract:
    removed = sorted(((n, g) for g, n in counts.items() if n), reverse=True)
    detail = ", ".join(f"{g} {n}" for n, g in removed) or "empty chain"
    return NoSuitableContract(f"no {what} passed the gates ({detail})", dict(counts), considered)


def select_put(
    chain: Sequence[OptionSnapshot],
    spot: Decimal,
    now: datetime,
    rate: float,
    regime: VolRegime,
    iv_percentile: Decimal | None,
    settings: HedgingSettings,
    template: TemplateName = "tail_first",
    *,
    underlying: str | None = None,
    div_yield: float = 0.0,
) -> Selection | NoSuitableContract:
    """The outright put to buy (module docstring: gates, tenor, neighbourhood, score)."""
    if template != "tail_first":
        raise ValueError(f"select_put buys outright puts (tail_first), not {template}")
    eff = effective_template(settings, regime, template)
    window = tenor_window(settings, regime, eff)
    name, rows, counts = _screen(
        chain, spot, now, rate, div_yield, window, eff, settings, underlying
    )
    # The payoff filter: (scenario value - premium) / premium >= min multiple.
    minimum = float(settings.scoring.min_payoff_multiple)
    passing = []
    for row in rows:
        paid = float(row.max_limit)
        if (row.shocked - paid) / paid >= minimum:
            passing.append(row)
        else:
            counts["payoff_multiple"] += 1
    if not passing:
        return _nothing(f"{name} put", counts, len(chain))

    target_delta = float(eff.target_abs_delta)
    longer = _prefers_longer(settings, iv_percentile)
    expiry = _ranked_expiries(passing, eff.target_dte, longer)[0]
    pool = _around([r for r in passing if r.dte == expiry], target_delta)

    scoring: Literal["convexity_payoff", "fallback"]
    sc = settings.scoring
    if all(r.source == "feed" for r in pool):
        scoring = "convexity_payoff"
        conv = [_gamma(r) / (float(r.mid) * CONTRACT_MULTIPLIER) for r in pool]
        mult = [(r.shocked - float(r.max_limit)) / float(r.max_limit) for r in pool]
        best_conv = max(max(conv), 1e-300)
        best_mult = max(max(mult), 1e-300)
        scores = [
            float(sc.convexity_weight) * c / best_conv + float(sc.payoff_weight) * m / best_mult
            for c, m in zip(conv, mult, strict=True)
        ]
    else:
        scoring = "fallback"
        scores = [
            -(
                float(sc.fallback_delta_weight) * abs(r.delta - target_delta) / target_delta
                + float(sc.fallback_dte_weight) * abs(r.dte - eff.target_dte) / eff.target_dte
                + float(sc.fallback_spread_weight) * float(r.spread / r.mid)
            )
            for r in pool
        ]
    ranked = sorted(
        zip(scores, pool, strict=True),
        key=lambda p: (
            -p[0],
            abs(p[1].dte - eff.target_dte),
            abs(p[1].delta - target_delta),
            p[1].snap.symbol,
        ),
    )
    score, best = ranked[0]
    premium = best.max_limit * _M
    value = _money(best.shocked * CONTRACT_MULTIPLIER)
    payoff = value - premium
    why = (
        f"{best.snap.symbol}: |delta| {best.delta:.3f} (target {target_delta:.2f}), "
        f"{best.dte} DTE (window {window[0]}-{window[1]}, target {eff.target_dte}"
        f"{', longer preferred' if longer else ''}), "
        f"payoff {payoff / premium:.2f}x at {eff.scenario_move_pct} % / "
        f"+{eff.scenario_vol_shift_points} vol, {scoring} score {score:.4f} "
        f"among {len(pool)}{' (rich IV: further out, longer, smaller target)' if eff.rich_adjusted else ''}"
    )
    return Selection(
        template=template,
        structure="put",
        underlying=name,
        legs=(_leg(best, +1),),
        expiry=best.snap.contract.expiry,
        dte=best.dte,
        mid=best.mid,
        natural=best.snap.ask,
        max_limit_price=best.max_limit,
        premium_per_contract=premium,
        scenario_value_per_contract=value,
        payoff_per_contract=payoff,
        payoff_multiple=(payoff / premium).quantize(_SCORE_PLACES),
        floor_payoff_per_contract=_money(best.floor_shocked * CONTRACT_MULTIPLIER) - premium,
        greeks=_net_greeks([(best, +1)]),
        score=Decimal(repr(float(score))).quantize(_SCORE_PLACES),
        scoring=scoring,
        width=None,
        why=why,
        counts_by_gate=counts,
    )


def select_spread(
    chain: Sequence[OptionSnapshot],
    spot: Decimal,
    now: datetime,
    rate: float,
    regime: VolRegime,
    iv_percentile: Decimal | None,
    settings: HedgingSettings,
    template: TemplateName = "smoothing",
    *,
    underlying: str | None = None,
    div_yield: float = 0.0,
) -> Selection | NoSuitableContract:
    """The put spread to buy: long ~0.30 |delta|, short ~0.10 below it, one expiry, a debit."""
    if template != "smoothing":
        raise ValueError(f"select_spread buys put spreads (smoothing), not {template}")
    eff = effective_template(settings, regime, template)
    assert eff.short_abs_delta is not None
    window = tenor_window(settings, regime, eff)
    name, rows, counts = _screen(
        chain, spot, now, rate, div_yield, window, eff, settings, underlying
    )
    for outcome in SPREAD_OUTCOMES:
        counts[outcome] = 0
    long_target = float(eff.target_abs_delta)
    short_target = float(eff.short_abs_delta)
    longer = _prefers_longer(settings, iv_percentile)
    for dte in _ranked_expiries(rows, eff.target_dte, longer):
        legs = [r for r in rows if r.dte == dte]
        long = min(legs, key=lambda r: (abs(r.delta - long_target), -r.snap.contract.strike))
        lower = [r for r in legs if r.snap.contract.strike < long.snap.contract.strike]
        if not lower:
            counts["no_short_leg"] += 1
            continue
        short = min(lower, key=lambda r: (abs(r.delta - short_target), r.snap.contract.strike))
        mid = long.mid - short.mid
        natural = long.snap.ask - short.snap.bid
        if mid <= 0 or natural <= 0:
            counts["non_positive_debit"] += 1
            continue
        max_limit = _max_limit(mid, natural, settings)
        premium = max_limit * _M
        value = _money((long.shocked - short.shocked) * CONTRACT_MULTIPLIER)
        payoff = value - premium
        floor_value = _money((long.floor_shocked - short.floor_shocked) * CONTRACT_MULTIPLIER)
        if floor_value - premium < settings.scoring.min_payoff_multiple * premium:
            counts["spread_payoff_multiple"] += 1
            continue
        width = long.snap.contract.strike - short.snap.contract.strike
        multiple = (payoff / premium).quantize(_SCORE_PLACES)
        why = (
            f"long {long.snap.symbol} |delta| {long.delta:.3f} (target {long_target:.2f}), "
            f"short {short.snap.symbol} |delta| {short.delta:.3f} (target {short_target:.2f}), "
            f"{dte} DTE (window {window[0]}-{window[1]}), width {width}, debit {mid} mid / "
            f"{natural} natural, payoff {multiple:.2f}x at {eff.scenario_move_pct} %, "
            f"{(floor_value - premium) / premium:.2f}x at {floor_scenario(settings)[0]} %"
        )
        return Selection(
            template=template,
            structure="put_spread",
            underlying=name,
            legs=(_leg(long, +1), _leg(short, -1)),
            expiry=long.snap.contract.expiry,
            dte=dte,
            mid=mid,
            natural=natural,
            max_limit_price=max_limit,
            premium_per_contract=premium,
            scenario_value_per_contract=value,
            payoff_per_contract=payoff,
            payoff_multiple=multiple,
            floor_payoff_per_contract=floor_value - premium,
            greeks=_net_greeks([(long, +1), (short, -1)]),
            score=multiple,
            scoring="spread",
            width=width,
            why=why,
            counts_by_gate=counts,
        )
    return _nothing(f"{name} put spread", counts, len(chain))
