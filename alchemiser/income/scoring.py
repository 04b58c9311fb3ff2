"""Scores of a screened candidate and the decision to trade it (PARAMETERS.md "Decision").

Score out of 10 = ``quant_weight`` × quantitative score + ``advisor_weight`` ×
advisor score + ``portfolio_fit_weight`` × portfolio-fit score, rounded to 2
decimals; execute at ≥ ``min_score``.

Quantitative score: the mean of five parts, each 0..10 and 2 decimals. A
candidate that just passes every screen at its edges scores about 5 on each
part (≈ 5.2–5.6 in all); a comfortable one 9 or more.

* ``yield``: r = annual yield / the kind's yield threshold. 5 × r below the
  threshold, 5 at it, rising linearly to 10 at twice it (and above).
* ``delta_fit``: |delta| against the kind's delta band. 10 at the middle of the
  band, 5 at either edge, 0 half a band-width outside it; unknown delta 0.
* ``iv_percentile``: calls, 10 at three quarters up the IV-percentile band
  (50 with 20–60: rich premium without a spike), 5 at either edge, falling
  linearly to 0 a band-width beyond them; puts (no IV screen), rising with
  the percentile from 6 at 0 to 10 at 100 (a seller is paid more when IV is
  rich). Unknown: 5.
* ``liquidity``: the weaker of two halves. Quote width: 10 at a spread ≤ 3 %
  of mid, falling linearly to 0 at 20 %. Open interest: 5 × OI / threshold up
  to the threshold, then on a log scale to 10 at 1000 contracts.
* ``earnings_distance``: next earnings against the trade (window = expiry +
  the put screen's ``earnings_buffer_days``, used for calls too). 0 when it
  falls between today and expiry; 0..5 linearly from expiry to the end of the
  buffer; 5..10 linearly over the 45 days after the buffer; 10 beyond.
  Unknown, or a date already past (a stale file): 8.

Advisor score: from an ``Advisor``; the default ``RulesAdvisor`` starts from a
neutral 8 and adds or takes points for clear reasons (yield well above or just
at its threshold, delta near the upper edge, missing IV history, earnings
inside the trade, a thin cushion between spot and strike, a call strike below
the wheel cost basis), and writes 1–3 plain sentences naming them.

Portfolio fit: 10 × (1 − the largest fraction of any risk limit the book would
use after the trade), clipped to 0..10.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from alchemiser.income.candidates import Candidate, SymbolFacts
from alchemiser.settings import income as income_settings
from alchemiser.settings.income import IncomeSettings

__all__ = [
    "QUANT_PARTS",
    "Advice",
    "Advisor",
    "Decision",
    "QuantScore",
    "RulesAdvisor",
    "decide",
    "portfolio_fit_score",
    "quant_score",
]

QUANT_PARTS: tuple[str, ...] = (
    "yield",
    "delta_fit",
    "iv_percentile",
    "liquidity",
    "earnings_distance",
)

_ZERO = Decimal(0)
_FIVE = Decimal(5)
_TEN = Decimal(10)
_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")

# Calibration of the quantitative parts (not settings: they shape a score, not a rule).
GOOD_SPREAD_PCT = Decimal(3)  # quote width at or under this: full marks
BAD_SPREAD_PCT = Decimal(20)  # quote width at or over this: no marks
GOOD_OPEN_INTEREST = Decimal(1000)  # open interest at or over this: full marks
EARNINGS_FULL_MARKS_DAYS = 45  # days after expiry + buffer for full marks
UNKNOWN_IV_PERCENTILE_SCORE = Decimal(5)
UNKNOWN_EARNINGS_SCORE = Decimal(8)
PUT_IV_PERCENTILE_FLOOR = Decimal(6)  # puts: score at the 0th percentile, rising to 10 at 100th


def _clip(value: Decimal) -> Decimal:
    """``value`` within 0..10, to 2 decimals."""
    return min(_TEN, max(_ZERO, value)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _delta_decimal(delta: float) -> Decimal:
    return Decimal(repr(delta))


# ---------------------------------------------------------------------------- quant parts


def yield_part(annual_yield_pct: Decimal, threshold_pct: Decimal) -> Decimal:
    """5 × yield/threshold below it, 5 at it, linear to 10 at twice it."""
    if threshold_pct <= 0:
        return _TEN if annual_yield_pct > 0 else _ZERO
    ratio = annual_yield_pct / threshold_pct
    if ratio <= 1:
        return _clip(_FIVE * ratio)
    return _clip(_FIVE + _FIVE * (ratio - 1))


def delta_fit_part(delta: float | None, low: Decimal, high: Decimal) -> Decimal:
    """10 at the middle of the |delta| band, 5 at its edges, 0 half a width outside."""
    if delta is None:
        return _ZERO
    lo, hi = sorted((abs(low), abs(high)))
    size = abs(_delta_decimal(delta))
    middle = (lo + hi) / 2
    half = (hi - lo) / 2
    if half == 0:
        return _TEN if size == middle else _ZERO
    return _clip(_TEN - _FIVE * abs(size - middle) / half)


def iv_percentile_part(
    percentile: Decimal | None, kind: str, low: Decimal, high: Decimal
) -> Decimal:
    """Calls: 10 three quarters up the band, 5 at its edges; puts: 6..10 rising; unknown 5."""
    if percentile is None:
        return UNKNOWN_IV_PERCENTILE_SCORE
    if kind != "covered_call":
        rise = (_TEN - PUT_IV_PERCENTILE_FLOOR) * min(max(percentile, _ZERO), _HUNDRED) / _HUNDRED
        return _clip(PUT_IV_PERCENTILE_FLOOR + rise)
    width = high - low
    if width <= 0:
        return _TEN if percentile == low else _ZERO
    peak = low + width * Decimal("0.75")
    if percentile <= peak:
        below = peak - percentile  # 5 points lost over (peak − low), then 5 more over one width
        if percentile >= low:
            return _clip(_TEN - _FIVE * below / (peak - low))
        return _clip(_FIVE - _FIVE * (low - percentile) / width)
    if percentile <= high:
        return _clip(_TEN - _FIVE * (percentile - peak) / (high - peak))
    return _clip(_FIVE - _FIVE * (percentile - high) / width)


def spread_part(spread_pct: Decimal) -> Decimal:
    """10 at ≤ GOOD_SPREAD_PCT, 0 at ≥ BAD_SPREAD_PCT, linear between."""
    if spread_pct <= GOOD_SPREAD_PCT:
        return _TEN
    return _clip(_TEN * (BAD_SPREAD_PCT - spread_pct) / (BAD_SPREAD_PCT - GOOD_SPREAD_PCT))


def open_interest_part(open_interest: int | None, threshold: int) -> Decimal:
    """5 × OI / threshold up to the threshold, log scale to 10 at GOOD_OPEN_INTEREST."""
    if open_interest is None or open_interest <= 0:
        return _ZERO
    oi = Decimal(open_interest)
    base = Decimal(max(threshold, 1))
    if oi <= base:
        return _clip(_FIVE * oi / base)
    if oi >= GOOD_OPEN_INTEREST:
        return _TEN
    return _clip(_FIVE + _FIVE * (oi / base).ln() / (GOOD_OPEN_INTEREST / base).ln())


def liquidity_part(spread_pct: Decimal, open_interest: int | None, threshold: int) -> Decimal:
    """The weaker of the quote-width and open-interest halves."""
    return min(spread_part(spread_pct), open_interest_part(open_interest, threshold))


def earnings_part(
    next_earnings: date | None, as_of: date, expiry: date, buffer_days: int
) -> Decimal:
    """0 inside the trade, 0..5 within the buffer after expiry, 5..10 over 45 days; unknown 8."""
    if next_earnings is None or next_earnings < as_of:
        return UNKNOWN_EARNINGS_SCORE
    after = (next_earnings - expiry).days
    if after <= 0:
        return _ZERO
    if after <= buffer_days:
        return _clip(_FIVE * Decimal(after) / Decimal(buffer_days))
    beyond = Decimal(after - buffer_days)
    return _clip(_FIVE + _FIVE * beyond / Decimal(EARNINGS_FULL_MARKS_DAYS))


@dataclass(frozen=True, slots=True)
class QuantScore:
    """Quantitative score: each part 0..10; total = mean of the parts, 2 decimals."""

    total: Decimal
    parts: dict[str, Decimal]


def quant_score(candidate: Candidate, facts: SymbolFacts, income: IncomeSettings) -> QuantScore:
    """The five parts of QUANT_PARTS and their mean."""
    if candidate.kind == "covered_call":
        cc = income.covered_call
        threshold = cc.annual_yield_above_pct
        band = (cc.min_delta, cc.max_delta)
        iv_band = (cc.min_iv_percentile, cc.max_iv_percentile)
        oi_threshold = cc.open_interest_above
    else:
        csp = income.cash_secured_put
        threshold = csp.annual_yield_above_pct
        band = (csp.min_delta, csp.max_delta)
        iv_band = (_ZERO, _HUNDRED)
        oi_threshold = csp.open_interest_above
    parts = {
        "yield": yield_part(candidate.annual_yield_pct, threshold),
        "delta_fit": delta_fit_part(candidate.delta, *band),
        "iv_percentile": iv_percentile_part(facts.iv_percentile, candidate.kind, *iv_band),
        "liquidity": liquidity_part(
            candidate.spread_pct, candidate.snapshot.open_interest, oi_threshold
        ),
        "earnings_distance": earnings_part(
            facts.info.next_earnings,
            candidate.as_of,
            candidate.expiry,
            income.cash_secured_put.earnings_buffer_days,
        ),
    }
    parts = {name: _clip(value) for name, value in parts.items()}
    total = _clip(sum(parts.values(), _ZERO) / len(parts))
    return QuantScore(total=total, parts=parts)


# ---------------------------------------------------------------------------- advisor


@dataclass(frozen=True, slots=True)
class Advice:
    """An advisor's score 0..10 and its plain-English rationale."""

    score: Decimal
    rationale: str


class Advisor(Protocol):
    """Second opinion on a screened candidate (rules-based by default, an LLM later)."""

    async def advise(
        self, candidate: Candidate, facts: SymbolFacts, quant: QuantScore
    ) -> Advice: ...


NEUTRAL_ADVICE = Decimal(8)


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _ordinal(value: Decimal) -> str:
    n = int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class RulesAdvisor:
    """Deterministic advisor: a neutral 8 adjusted by plain reasons; no I/O.

    ``settings`` gives the income settings in force (an ``IncomeSettings`` or a
    callable returning the live one, read at each call); default: the defaults.
    """

    def __init__(
        self, settings: IncomeSettings | Callable[[], IncomeSettings] | None = None
    ) -> None:
        self._settings = settings

    def _income(self) -> IncomeSettings:
        if self._settings is None:
            return IncomeSettings()
        if isinstance(self._settings, IncomeSettings):
            return self._settings
        return self._settings()

    async def advise(self, candidate: Candidate, facts: SymbolFacts, quant: QuantScore) -> Advice:
        return self.advise_now(candidate, facts, self._income())

    def advise_now(
        self, candidate: Candidate, facts: SymbolFacts, income: IncomeSettings
    ) -> Advice:
        """The advice, synchronously (what ``advise`` awaits)."""
        is_call = candidate.kind == "covered_call"
        screen = income.covered_call if is_call else income.cash_secured_put
        score = NEUTRAL_ADVICE
        what = "call" if is_call else "put"
        name = (
            f"the {candidate.underlying} {candidate.expiry.isoformat()} "
            f"{_num(candidate.strike)} {what}"
        )

        # 1. yield against its threshold, delta and time.
        threshold = screen.annual_yield_above_pct
        y = candidate.annual_yield_pct
        if threshold > 0 and y > threshold:
            multiple = y / threshold
            if multiple >= 2:
                score += 1
            elif multiple < Decimal("1.25"):
                score -= 1
            vs = f"{multiple:.1f}× the {_num(threshold)} % threshold"
        elif y > threshold:
            vs = f"above the {_num(threshold)} % threshold"
        else:
            score -= 3
            vs = f"not above the {_num(threshold)} % threshold"
        if candidate.delta is None:
            score -= 2
            delta_text = "an unknown delta"
        else:
            delta_text = f"delta {candidate.delta:.2f}"
            lo, hi = sorted((abs(screen.min_delta), abs(screen.max_delta)))
            if abs(_delta_decimal(candidate.delta)) > lo + (hi - lo) * Decimal("0.75"):
                score -= Decimal("0.5")
                delta_text += " (assignment fairly likely)"
        first = (
            f"Selling {name} for {_money(candidate.mid)} yields {y:.2f} % a year, {vs}, "
            f"at {delta_text} with {candidate.dte} days to expiry."
        )

        # 2. IV percentile and earnings.
        pct = facts.iv_percentile
        if pct is None:
            if is_call:
                score -= 1
            iv_text = "IV history is too short for a percentile"
        else:
            iv_text = f"IV is at its {_ordinal(pct)} percentile"
            if not is_call and pct >= 80:
                score -= 1
                iv_text += ", high enough to suggest news"
        earnings = facts.info.next_earnings
        buffer = income.cash_secured_put.earnings_buffer_days
        if earnings is None or earnings < candidate.as_of:
            score -= Decimal("0.5")
            earn_text = "no upcoming earnings date is on file"
        elif earnings <= candidate.expiry:
            score -= 2
            earn_text = f"earnings on {earnings.isoformat()} fall before expiry"
        elif (earnings - candidate.expiry).days <= buffer:
            score -= 1
            earn_text = f"earnings on {earnings.isoformat()} come soon after expiry"
        else:
            earn_text = f"earnings on {earnings.isoformat()} come well after expiry"
        second = f"{iv_text}; {earn_text}."

        # 3. cushion to the strike and the wheel's cost basis.
        spot = candidate.spot
        strike = candidate.strike
        if spot > 0:
            cushion = (strike - spot if is_call else spot - strike) / spot * _HUNDRED
            side = "above" if is_call else "below"
            if cushion < 0:
                score -= 2
                cushion_text = (
                    f"The strike is {abs(cushion):.1f} % in the money against spot {_money(spot)}"
                )
            else:
                if cushion < 3:
                    score -= 1
                elif cushion >= 10:
                    score += Decimal("0.5")
                cushion_text = f"The strike is {cushion:.1f} % {side} spot {_money(spot)}"
        else:
            cushion_text = "The spot price is unknown"
        if is_call:
            basis = facts.cost_basis
            if basis is None:
                score -= Decimal("0.5")
                basis_text = "and the cost basis is unknown"
            elif strike >= basis:
                score += Decimal("0.5")
                basis_text = f"and assignment would sell at or above the cost basis {_money(basis)}"
            else:
                score -= 2
                basis_text = f"and assignment would sell below the cost basis {_money(basis)}"
        else:
            basis_text = (
                f"and assignment would buy shares at a wheel cost basis of "
                f"{_money(strike - candidate.mid)}"
            )
        third = f"{cushion_text}, {basis_text}."
        return Advice(score=_clip(score), rationale=" ".join((first, second, third)))


# ---------------------------------------------------------------------------- fit and decision


def portfolio_fit_score(usage: Mapping[str, Decimal]) -> Decimal:
    """10 × (1 − the largest fraction of a risk limit used after the trade), 0..10; empty → 10."""
    if not usage:
        return _TEN.quantize(_CENT)
    return _clip(_TEN * (1 - max(usage.values())))


@dataclass(frozen=True, slots=True)
class Decision:
    quant: Decimal
    advisor: Decimal
    fit: Decimal
    total: Decimal
    execute: bool


def decide(quant: Decimal, advisor: Decimal, fit: Decimal, d: income_settings.Decision) -> Decision:
    """Weighted total (2 decimals, half up) and whether it reaches ``min_score``."""
    total = (
        d.quant_weight * quant + d.advisor_weight * advisor + d.portfolio_fit_weight * fit
    ).quantize(_CENT, rounding=ROUND_HALF_UP)
    return Decision(
        quant=quant, advisor=advisor, fit=fit, total=total, execute=total >= d.min_score
    )
