"""The pre-trade check every income order goes through (PARAMETERS.md "Risk limits").

``IncomeRiskCheck`` satisfies the execution engine's ``PreTradeCheck``. It ignores
plans of other strategies (hedges) and closing orders (risk-reducing); for an
opening income order it reads the risk settings in force *now* and applies:

1. per-trade notional ≤ ``max_trade_pct`` % of NAV (a short put: strike × 100 × qty,
   cash secured; a short call: shares covered × spot);
2. open income positions after the trade ≤ ``max_income_positions``;
3. a short put is cash secured (cash − cash reserved by open short income puts),
   a short call covered (shares held − shares covered by short income calls);
4. sector exposure (equity market value in the sector + this trade's notional)
   ≤ ``max_sector_pct`` % of NAV — for cash-secured puts only: a covered call
   adds no exposure (it caps shares already held);
5. income-book greeks after the trade: |beta-weighted delta dollars| / NAV ≤
   ``max_abs_net_delta``, |gamma dollars per 1 % move| / NAV ≤ ``max_abs_net_gamma``,
   |vega of one vol point| < ``max_vega_pct`` % of NAV.

Every rule is a pure function returning a ``Breach`` or ``None``; the check
collects all breaches, records one ``PRETRADE_REJECTED`` audit entry and raises
``PreTradeRejected`` whose reason names each limit, the value after the trade
and the limit value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from alchemiser.broker.base import Broker
from alchemiser.clock import NEW_YORK, Clock
from alchemiser.domain.options import OptionContract, parse_occ
from alchemiser.domain.trading import (
    OptionSnapshot,
    OrderLeg,
    Position,
    PositionIntent,
    Side,
    StockQuote,
)
from alchemiser.execution.engine import ExecutionPlan, PreTradeRejected
from alchemiser.market.reference import ReferenceData
from alchemiser.risk.book import OPTION_MULTIPLIER, RiskPosition, Strategy, build_book
from alchemiser.risk.greeks import GreekTotals, book_greeks
from alchemiser.settings.base import fmt
from alchemiser.settings.live import LiveSettings
from alchemiser.settings.risk import RiskSettings
from alchemiser.store.audit import AuditLog

__all__ = [
    "AUDIT_ACTION",
    "Breach",
    "IncomeRiskCheck",
    "ProposedLeg",
    "check_cash_secured",
    "check_covered",
    "check_net_delta",
    "check_net_gamma",
    "check_position_count",
    "check_sector",
    "check_trade_size",
    "check_vega",
    "greek_breaches",
    "leg_notional",
    "sector_of",
]

AUDIT_ACTION = "PRETRADE_REJECTED"
_HUNDRED = Decimal(100)
_CLOSING = frozenset({PositionIntent.BUY_TO_CLOSE, PositionIntent.SELL_TO_CLOSE})


@dataclass(frozen=True, slots=True)
class Breach:
    """One limit the order would break: its name, the value after the trade and the limit."""

    limit: str
    value: Decimal
    limit_value: Decimal
    message: str

    def details(self) -> dict[str, str]:
        return {
            "limit": self.limit,
            "value": str(self.value),
            "limit_value": str(self.limit_value),
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class ProposedLeg:
    """One opening leg of the order: contract, signed contracts (negative = sold) and spot."""

    symbol: str
    contract: OptionContract
    contracts: int  # signed: negative for a sale
    spot: Decimal  # the underlying's price

    @property
    def is_short(self) -> bool:
        return self.contracts < 0


def _money(x: Decimal) -> str:
    return f"{x:,.2f}"


def _pct(x: Decimal) -> str:
    return f"{x:,.2f} %"


def _share(value: Decimal, nav: Decimal) -> Decimal:
    """``value`` as percent of NAV (infinite for NAV ≤ 0: nothing is safe without NAV)."""
    if nav <= 0:
        return Decimal("Infinity")
    return value / nav * _HUNDRED


def _fraction(value: Decimal, limit: Decimal) -> Decimal:
    """``value`` as a fraction of ``limit`` (4 dp); anything against a limit ≤ 0 is infinite."""
    if value <= 0:
        return Decimal(0)
    if limit <= 0:
        return Decimal("Infinity")
    return (value / limit).quantize(Decimal("0.0001"))


# -- pure rules ------------------------------------------------------------------------------


def leg_notional(leg: ProposedLeg) -> Decimal:
    """Notional of a sold leg: put strike × 100 × qty (cash secured), call 100 × qty × spot."""
    if not leg.is_short:
        return Decimal(0)
    shares = Decimal(-leg.contracts * OPTION_MULTIPLIER)
    if leg.contract.right.is_call:
        return shares * leg.spot
    return shares * leg.contract.strike


def check_trade_size(notional: Decimal, nav: Decimal, max_pct: Decimal) -> Breach | None:
    """Rule 1: this trade's notional ≤ ``max_pct`` % of NAV."""
    pct = _share(notional, nav)
    if pct <= max_pct:
        return None
    cap = nav * max_pct / _HUNDRED
    return Breach(
        "per-trade limit",
        notional,
        cap,
        f"per-trade limit: this trade {_money(notional)} = {_pct(pct)} of NAV > "
        f"{fmt(max_pct)} % of NAV ({_money(cap)})",
    )


def check_position_count(open_after: int, max_positions: int) -> Breach | None:
    """Rule 2: open income positions after the trade ≤ ``max_positions``."""
    if open_after <= max_positions:
        return None
    return Breach(
        "income position limit",
        Decimal(open_after),
        Decimal(max_positions),
        f"income position limit: {open_after} open income positions after this trade > "
        f"{max_positions} allowed",
    )


def check_cash_secured(cash: Decimal, reserved: Decimal, required: Decimal) -> Breach | None:
    """Rule 3 (puts): cash − cash reserved by open short income puts ≥ ``required``."""
    free = cash - reserved
    if free >= required:
        return None
    return Breach(
        "cash-secured limit",
        required,
        free,
        f"cash-secured limit: this put needs {_money(required)} of cash > "
        f"{_money(free)} free (cash {_money(cash)} − {_money(reserved)} reserved by open "
        "short income puts)",
    )


def check_covered(held: Decimal, covered: Decimal, required: Decimal) -> Breach | None:
    """Rule 3 (calls): shares held − shares covered by short income calls ≥ ``required``."""
    free = held - covered
    if free >= required:
        return None
    return Breach(
        "covered-call limit",
        required,
        free,
        f"covered-call limit: this call needs {fmt(required)} shares > {fmt(free)} free "
        f"(held {fmt(held)} − {fmt(covered)} covered by short income calls)",
    )


def check_sector(
    sector: str, sector_value: Decimal, notional: Decimal, nav: Decimal, max_pct: Decimal
) -> Breach | None:
    """Rule 4: equity value in the sector + this trade's notional ≤ ``max_pct`` % of NAV."""
    after = sector_value + notional
    pct = _share(after, nav)
    if pct <= max_pct:
        return None
    cap = nav * max_pct / _HUNDRED
    return Breach(
        "sector limit",
        after,
        cap,
        f"sector limit: {sector} {_money(after)} after this trade = {_pct(pct)} of NAV > "
        f"{fmt(max_pct)} % of NAV ({_money(cap)})",
    )


def check_net_delta(beta_delta_dollars: Decimal, nav: Decimal, limit: Decimal) -> Breach | None:
    """Rule 5a: |beta-weighted delta dollars of the income book| / NAV ≤ ``limit``."""
    ratio = beta_delta_dollars / nav if nav > 0 else Decimal("Infinity")
    if abs(ratio) <= limit:
        return None
    return Breach(
        "net delta limit",
        ratio,
        limit,
        f"net delta limit: income book beta-weighted delta {_money(beta_delta_dollars)} = "
        f"{ratio:.4f} of NAV, outside ±{fmt(limit)}",
    )


def check_net_gamma(gamma_dollars: Decimal, nav: Decimal, limit: Decimal) -> Breach | None:
    """Rule 5b: |gamma dollars (delta change for a 1 % move)| / NAV ≤ ``limit``."""
    ratio = gamma_dollars / nav if nav > 0 else Decimal("Infinity")
    if abs(ratio) <= limit:
        return None
    return Breach(
        "net gamma limit",
        ratio,
        limit,
        f"net gamma limit: income book gamma {_money(gamma_dollars)} per 1 % move = "
        f"{ratio:.4f} of NAV, outside ±{fmt(limit)}",
    )


def check_vega(vega: Decimal, nav: Decimal, max_pct: Decimal) -> Breach | None:
    """Rule 5c: |P&L of one vol point of the income book| < ``max_pct`` % of NAV."""
    pct = _share(abs(vega), nav)
    if pct < max_pct:
        return None
    cap = nav * max_pct / _HUNDRED
    return Breach(
        "vega limit",
        abs(vega),
        cap,
        f"vega limit: income book vega {_money(abs(vega))} per vol point = {_pct(pct)} of NAV "
        f"≥ {fmt(max_pct)} % of NAV ({_money(cap)})",
    )


def greek_breaches(income: GreekTotals, nav: Decimal, risk: RiskSettings) -> list[Breach]:
    """Rule 5 on the income book's totals (proposed position included)."""
    found = [
        check_net_delta(income.beta_delta_dollars, nav, risk.max_abs_net_delta),
        check_net_gamma(income.gamma_dollars, nav, risk.max_abs_net_gamma),
        check_vega(income.vega, nav, risk.max_vega_pct),
    ]
    return [b for b in found if b is not None]


def sector_of(reference: ReferenceData, symbol: str) -> str:
    """The symbol's sector; an unknown sector is a bucket of the symbol alone."""
    return reference.get(symbol).sector or f"unknown sector ({symbol})"


def _reserved_cash(positions: Iterable[Position], income: set[str]) -> Decimal:
    """Cash reserved by open short income puts: strike × 100 × contracts short."""
    total = Decimal(0)
    for p in positions:
        if p.is_option and p.symbol in income and p.qty < 0:
            c = parse_occ(p.symbol)
            if not c.right.is_call:
                total += c.strike * OPTION_MULTIPLIER * -p.qty
    return total


def _covered_shares(positions: Iterable[Position], income: set[str], underlying: str) -> Decimal:
    """Shares of ``underlying`` already covering short income calls."""
    total = Decimal(0)
    for p in positions:
        if p.is_option and p.symbol in income and p.qty < 0:
            c = parse_occ(p.symbol)
            if c.right.is_call and c.root == underlying:
                total += OPTION_MULTIPLIER * -p.qty
    return total


def _stock_price(quote: StockQuote) -> Decimal:
    return quote.mid if quote.bid > 0 and quote.ask > 0 else quote.last


def _is_opening(leg: OrderLeg) -> bool:
    return leg.position_intent not in _CLOSING


# -- the check ---------------------------------------------------------------------------------


class IncomeRiskCheck:
    """The risk engine's pre-trade check of income orders (a ``PreTradeCheck``)."""

    def __init__(
        self,
        broker: Broker,
        settings: LiveSettings,
        reference: ReferenceData,
        audit: AuditLog,
        clock: Clock,
        income_symbols: Callable[[], Awaitable[set[str]]],
    ) -> None:
        self._broker = broker
        self._settings = settings
        self._reference = reference
        self._audit = audit
        self._clock = clock
        self._income_symbols = income_symbols

    async def check(self, plan: ExecutionPlan, qty: int, limit_price: Decimal) -> None:
        if plan.strategy != "income":
            return
        opening = [leg for leg in plan.legs if _is_opening(leg)]
        if not opening:
            return  # closing: risk-reducing, always allowed
        risk = self._settings.current.risk  # read now: a config edit applies to the next check
        breaches, _ = await self._assess(plan, opening, qty, risk)
        if not breaches:
            return
        reason = "; ".join(b.message for b in breaches)
        await self._audit.record(
            AUDIT_ACTION,
            related_ids={"intent_key": plan.intent_key},
            details={
                "strategy": plan.strategy,
                "purpose": plan.purpose,
                "legs": [leg.symbol for leg in plan.legs],
                "qty": qty,
                "limit_price": str(limit_price),
                "reason": reason,
                "breaches": [b.details() for b in breaches],
            },
        )
        raise PreTradeRejected(reason)

    async def usage(self, plan: ExecutionPlan, qty: int) -> dict[str, Decimal]:
        """How much of each limit the book would use after ``plan`` (1 = at the limit).

        For the income screen's portfolio-fit score; the same measures as ``check``.
        An order whose risk cannot be assessed raises ``PreTradeRejected``.
        """
        opening = [leg for leg in plan.legs if _is_opening(leg)]
        if not opening:
            return {}
        _, used = await self._assess(plan, opening, qty, self._settings.current.risk)
        return used

    async def _assess(
        self, plan: ExecutionPlan, opening: Sequence[OrderLeg], qty: int, risk: RiskSettings
    ) -> tuple[list[Breach], dict[str, Decimal]]:
        income = set(await self._income_symbols())
        account = await self._broker.get_account()
        positions = await self._broker.get_positions()
        nav = account.equity
        held_income = [p for p in positions if p.is_option and p.symbol in income and p.qty != 0]
        contracts = {leg.symbol: parse_occ(leg.symbol) for leg in opening}
        option_quotes = await self._broker.get_option_quotes(
            sorted({p.symbol for p in held_income} | set(contracts))
        )
        missing = sorted(s for s in contracts if s not in option_quotes)
        if missing:
            raise await self._reject_unassessable(plan, f"no option quote for {', '.join(missing)}")
        underlyings = {c.root for c in contracts.values()} | {
            parse_occ(p.symbol).root for p in held_income
        }
        stock_quotes = await self._broker.get_stock_quotes(sorted(underlyings))
        legs = []
        for order_leg in opening:
            c = contracts[order_leg.symbol]
            spot = _spot(c.root, stock_quotes, option_quotes[order_leg.symbol])
            if spot is None:
                raise await self._reject_unassessable(plan, f"no price for {c.root}")
            sign = -1 if order_leg.side is Side.SELL else 1
            legs.append(ProposedLeg(order_leg.symbol, c, sign * qty * order_leg.ratio_qty, spot))

        found: list[Breach | None] = []
        used: dict[str, Decimal] = {}
        notional = sum((leg_notional(leg) for leg in legs), Decimal(0))
        # 1. per trade
        found.append(check_trade_size(notional, nav, risk.max_trade_pct))
        used["per_trade"] = _fraction(notional, nav * risk.max_trade_pct / _HUNDRED)
        # 2. position count (distinct income option symbols held)
        held_symbols = {p.symbol for p in held_income}
        new_symbols = {leg.symbol for leg in legs} - held_symbols
        count = len(held_symbols) + len(new_symbols)
        found.append(check_position_count(count, risk.max_income_positions))
        used["positions"] = _fraction(Decimal(count), Decimal(risk.max_income_positions))
        # 3. cash secured / covered
        short_puts = [leg for leg in legs if leg.is_short and not leg.contract.right.is_call]
        if short_puts:
            required = sum((leg_notional(leg) for leg in short_puts), Decimal(0))
            reserved = _reserved_cash(positions, income)
            found.append(check_cash_secured(account.cash, reserved, required))
            used["cash_secured"] = _fraction(required, account.cash - reserved)
        short_calls = [leg for leg in legs if leg.is_short and leg.contract.right.is_call]
        for root in sorted({leg.contract.root for leg in short_calls}):
            need = Decimal(
                sum(
                    -leg.contracts * OPTION_MULTIPLIER
                    for leg in short_calls
                    if leg.contract.root == root
                )
            )
            shares = sum(
                (p.qty for p in positions if not p.is_option and p.symbol == root), Decimal(0)
            )
            already = _covered_shares(positions, income, root)
            found.append(check_covered(shares, already, need))
            used[f"covered:{root}"] = _fraction(need, shares - already)
        # 4. sector: new exposure only; a covered call caps shares already held (reduces it)
        by_sector: dict[str, Decimal] = {}
        for leg in short_puts:
            key = self._sector(leg.contract.root)
            by_sector[key] = by_sector.get(key, Decimal(0)) + leg_notional(leg)
        for sector, add in sorted(by_sector.items()):
            value = sum(
                (
                    p.market_value
                    for p in positions
                    if not p.is_option and self._sector(p.symbol) == sector
                ),
                Decimal(0),
            )
            found.append(check_sector(sector, value, add, nav, risk.max_sector_pct))
            used[f"sector:{sector}"] = _fraction(value + add, nav * risk.max_sector_pct / _HUNDRED)
        # 5. greeks of the income book with the proposed position
        tags: dict[str, Strategy] = {p.symbol: "income" for p in held_income}
        book = build_book(held_income, stock_quotes, option_quotes, tags)
        for leg in legs:
            snap = option_quotes[leg.symbol]
            if snap.implied_volatility is None:
                raise await self._reject_unassessable(
                    plan, f"no implied volatility for {leg.symbol}"
                )
            book.append(
                RiskPosition(
                    symbol=leg.symbol,
                    kind="option",
                    qty=float(leg.contracts),
                    strategy="income",
                    underlying=leg.contract.root,
                    spot=float(leg.spot),
                    strike=float(leg.contract.strike),
                    expiry=leg.contract.expiry,
                    right=leg.contract.right,
                    iv=float(snap.implied_volatility),
                    mark=float(snap.mid),
                )
            )
        greeks = book_greeks(
            book,
            as_of=self._clock.now().astimezone(NEW_YORK).date(),
            rate=float(risk.risk_free_rate_pct) / 100,
            betas=self._reference,
        )
        totals = greeks.by_strategy["income"]
        found.extend(greek_breaches(totals, nav, risk))
        if nav > 0:
            used["net_delta"] = _fraction(
                abs(totals.beta_delta_dollars) / nav, risk.max_abs_net_delta
            )
            used["net_gamma"] = _fraction(abs(totals.gamma_dollars) / nav, risk.max_abs_net_gamma)
            used["vega"] = _fraction(abs(totals.vega), nav * risk.max_vega_pct / _HUNDRED)
        return [b for b in found if b is not None], used

    def _sector(self, symbol: str) -> str:
        return sector_of(self._reference, symbol)

    async def _reject_unassessable(self, plan: ExecutionPlan, why: str) -> PreTradeRejected:
        """Fail closed: an order whose risk cannot be measured is refused (and audited)."""
        reason = f"risk not assessable: {why}"
        await self._audit.record(
            AUDIT_ACTION,
            related_ids={"intent_key": plan.intent_key},
            details={"strategy": plan.strategy, "purpose": plan.purpose, "reason": reason},
        )
        return PreTradeRejected(reason)


def _spot(
    root: str, stock_quotes: Mapping[str, StockQuote], snap: OptionSnapshot
) -> Decimal | None:
    quote = stock_quotes.get(root)
    if quote is not None:
        price = _stock_price(quote)
        if price > 0:
            return price
    return snap.underlying_price
