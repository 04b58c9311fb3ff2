"""The income screen: universe → chains → quote checks → rules → scores → decisions.

Universe: shares owned (covered calls, on the shares not already covered) and
``income.watch_list`` (cash-secured puts). One open income position per name
and kind at a time: a name with an open short put gets no second put, and
calls are only written on uncovered shares. Per name the best-scoring contract
that passed every rule is the proposal; proposals are taken best first while
cash and shares last, so two proposals never count on the same collateral.

Each run is stored with how many quotes were dropped and why, and how many
candidates each rule removed; every candidate that passed the rules is stored
with its scores, rationale and decision. ``explain`` gives the rule results
of every candidate of one symbol (for ``alchemiser income screen --explain``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import structlog

from alchemiser.broker.base import BrokerError
from alchemiser.domain.trading import OptionSnapshot, OrderLeg, PositionIntent, Side

# Quotes older than the executor's bound are stale: never screened either.
from alchemiser.execution.engine import DEFAULT_MAX_QUOTE_AGE_SECONDS as MAX_QUOTE_AGE_SECONDS
from alchemiser.execution.engine import ExecutionPlan
from alchemiser.hedging.book import spots
from alchemiser.hedging.iv_capture import ATM_DAYS
from alchemiser.hedging.vol_regime import atm_iv, iv_percentile
from alchemiser.income.candidates import (
    SHARES_PER_CONTRACT as MULTIPLIER,
)
from alchemiser.income.candidates import (
    Candidate,
    Kind,
    SymbolFacts,
    contracts_for,
)
from alchemiser.income.chain_quality import put_call_ratio, sector_average, validate_quotes
from alchemiser.income.context import IncomeContext
from alchemiser.income.rules import RuleResult, passed, screen
from alchemiser.income.scoring import decide, portfolio_fit_score, quant_score
from alchemiser.income.trader import Proposal, min_credit, open_intent_key
from alchemiser.risk.pretrade import sector_of
from alchemiser.store.income import NewCandidate

log = structlog.stdlib.get_logger("alchemiser.income")


@dataclass
class Scored:
    candidate: Candidate
    facts: SymbolFacts
    contracts: int
    results: list[RuleResult]
    quant: Decimal = Decimal(0)
    quant_parts: dict[str, Decimal] = field(default_factory=dict)
    advisor: Decimal = Decimal(0)
    fit: Decimal = Decimal(0)
    total: Decimal = Decimal(0)
    execute: bool = False
    rationale: str = ""
    decision: str = "below_threshold"
    usage: dict[str, Decimal] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        c = self.candidate
        return {
            "kind": c.kind,
            "symbol": c.symbol,
            "underlying": c.underlying,
            "strike": str(c.strike),
            "expiry": c.expiry.isoformat(),
            "dte": c.dte,
            "bid": str(c.snapshot.bid),
            "ask": str(c.snapshot.ask),
            "mid": str(c.mid),
            "delta": c.delta,
            "iv": c.iv,
            "annual_yield_pct": str(c.annual_yield_pct),
            "contracts": self.contracts,
            "quant": str(self.quant),
            "quant_parts": {k: str(v) for k, v in self.quant_parts.items()},
            "advisor": str(self.advisor),
            "fit": str(self.fit),
            "total": str(self.total),
            "limit_usage": {k: str(v) for k, v in self.usage.items()},
            "rules": [r.as_json() for r in self.results],
        }


@dataclass
class ScreenReport:
    session_date: date
    skipped: str | None = None
    universe: dict[str, list[str]] = field(default_factory=dict)
    quotes_seen: int = 0
    quotes_dropped: Counter[str] = field(default_factory=Counter)
    candidates: int = 0
    removed_by_rule: Counter[str] = field(default_factory=Counter)
    scored: list[Scored] = field(default_factory=list)
    proposals: list[tuple[Proposal, Scored]] = field(default_factory=list)
    explained: list[tuple[Candidate, list[RuleResult]]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    run_id: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "universe": self.universe,
            "quotes_seen": self.quotes_seen,
            "quotes_dropped": dict(self.quotes_dropped),
            "candidates": self.candidates,
            "removed_by_rule": dict(self.removed_by_rule),
            "passed": len(self.scored),
            "proposals": [p.symbol for p, _ in self.proposals],
            "errors": self.errors,
        }


class IncomeScreener:
    def __init__(self, ctx: IncomeContext) -> None:
        self.ctx = ctx

    async def run(
        self,
        session_date: date,
        *,
        record: bool = True,
        explain: str | None = None,
        correlation_id: str | None = None,
        releasing: frozenset[str] = frozenset(),
    ) -> ScreenReport:
        """Screen, score and decide; ``record`` stores the run and its candidates.

        ``releasing``: open positions to screen as if already closed (a roll's old leg).
        """
        report = ScreenReport(session_date)
        income = self.ctx.income
        if not income.enabled:
            report.skipped = "income.enabled is false"
        else:
            await self._screen(report, explain, releasing)
        if record:
            rows = [
                NewCandidate(
                    kind=s.candidate.kind,
                    underlying=s.candidate.underlying,
                    symbol=s.candidate.symbol,
                    contracts=s.contracts,
                    bid=s.candidate.snapshot.bid,
                    mid=s.candidate.mid,
                    total_score=s.total,
                    decision=s.decision,
                    rationale=s.rationale,
                    details=s.as_json(),
                )
                for s in report.scored
            ]
            report.run_id, ids = await self.ctx.store.save_run(
                session_date, correlation_id, report.summary(), rows
            )
            by_scored = {id(s): cid for s, cid in zip(report.scored, ids, strict=True)}
            report.proposals = [
                (_with_candidate(p, by_scored[id(s)]), s) for p, s in report.proposals
            ]
        log.info(
            "income_screen_completed", session_date=session_date.isoformat(), **report.summary()
        )
        return report

    async def _screen(
        self, report: ScreenReport, explain: str | None, releasing: frozenset[str]
    ) -> None:
        ctx = self.ctx
        income = ctx.income
        risk = ctx.settings.current.risk
        now = ctx.clock.now()
        account = await ctx.broker.get_account()
        positions = await ctx.broker.get_positions()
        open_positions = [p for p in await ctx.store.open_positions() if p.id not in releasing]
        wheels = {w.underlying: w for w in await ctx.store.wheels()}
        shares_held: dict[str, int] = {}
        for p in positions:
            if not p.is_option and p.qty > 0:
                shares_held[p.symbol] = int(p.qty)
        covered: Counter[str] = Counter()
        put_names: set[str] = set()
        reserved = Decimal(0)
        csp_by_sector: dict[str, Decimal] = {}
        for pos in open_positions:
            if pos.is_call:
                covered[pos.underlying] += pos.contracts * MULTIPLIER
            else:
                put_names.add(pos.underlying)
                notional = pos.strike * MULTIPLIER * pos.contracts
                reserved += notional
                bucket = sector_of(ctx.reference, pos.underlying)
                csp_by_sector[bucket] = csp_by_sector.get(bucket, Decimal(0)) + notional
        calls = (
            sorted(s for s, q in shares_held.items() if q - covered[s] >= MULTIPLIER)
            if income.covered_call.enabled
            else []
        )
        puts = (
            sorted(s for s in income.watch_list if s not in put_names)
            if income.cash_secured_put.enabled
            else []
        )
        report.universe = {"covered_call": calls, "cash_secured_put": puts}
        names = sorted(set(calls) | set(puts))
        if not names:
            report.skipped = "empty universe: no uncovered 100-share lots and no watch-list name"
            return
        prices = await spots(ctx.broker, names)
        today = report.session_date
        low = min(income.covered_call.min_dte, income.cash_secured_put.min_dte)
        high = max(income.covered_call.max_dte, income.cash_secured_put.max_dte)
        chains: dict[str, list[OptionSnapshot]] = {}
        for name in names:
            try:
                chains[name] = await ctx.broker.get_option_chain(
                    name, today + timedelta(days=low), today + timedelta(days=high)
                )
            except BrokerError as exc:
                report.errors[name] = f"chain unavailable: {exc}"
                log.warning("income_chain_unavailable", symbol=name, error=str(exc))
        ratios = {n: put_call_ratio(chain) for n, chain in chains.items()}
        sectors = {n: ctx.reference.get(n).sector for n in names}
        averages = sector_average(ratios, sectors)
        known = [n for n, r in ratios.items() if r is not None and sectors.get(n)]
        cash_free = account.cash - reserved
        basis = {p.symbol: p.avg_entry_price for p in positions if not p.is_option}
        for name in names:
            chain = chains.get(name)
            spot = prices.get(name)
            if chain is None or spot is None or spot <= 0:
                report.errors.setdefault(name, "no price for the underlying")
                continue
            valid, dropped = validate_quotes(chain, now, MAX_QUOTE_AGE_SECONDS)
            report.quotes_seen += len(chain)
            report.quotes_dropped.update(dropped)
            percentile = await self._iv_percentile(name, chain, spot, today)
            sector = sectors[name]
            wheel = wheels.get(name)
            facts = SymbolFacts(
                symbol=name,
                info=ctx.reference.get(name),
                spot=spot,
                iv_percentile=percentile,
                put_call_ratio=ratios.get(name),
                sector_put_call_average=averages.get(sector) if sector else None,
                shares_free=shares_held.get(name, 0) - covered[name],
                cost_basis=wheel.cost_basis if wheel is not None else basis.get(name),
                cash_free=cash_free,
                sector_csp_notional=csp_by_sector.get(sector_of(ctx.reference, name), Decimal(0)),
                csp_capacity=max(account.cash, Decimal(0)),
                nav=account.equity,
                sector_peers=sum(1 for n in known if n != name and sectors[n] == sector),
            )
            kinds: list[Kind] = []
            if name in calls:
                kinds.append("covered_call")
            if name in puts:
                kinds.append("cash_secured_put")
            for kind in kinds:
                right_is_call = kind == "covered_call"
                for snap in valid:
                    if snap.contract.right.is_call != right_is_call:
                        continue
                    candidate = Candidate.of(kind, snap, spot, today)
                    results = screen(candidate, facts, income, risk)
                    report.candidates += 1
                    if explain is not None and explain == name:
                        report.explained.append((candidate, results))
                    if not passed(results):
                        report.removed_by_rule.update(r.rule for r in results if not r.passed)
                        continue
                    contracts = contracts_for(candidate, facts, income, risk)
                    report.scored.append(Scored(candidate, facts, contracts, results))
        await self._score(report)
        self._propose(report, cash_free, shares_held, covered, {n: w.id for n, w in wheels.items()})

    async def _score(self, report: ScreenReport) -> None:
        ctx = self.ctx
        income = ctx.income
        for s in report.scored:
            q = quant_score(s.candidate, s.facts, income)
            s.quant, s.quant_parts = q.total, dict(q.parts)
            advice = await ctx.advisor.advise(s.candidate, s.facts, q)
            s.advisor, s.rationale = advice.score, advice.rationale
            s.usage = await ctx.risk.usage(_sale_plan(s), s.contracts)
            # Fewer contracts when the full size would break a limit (a sector, the greeks):
            # the screen never proposes what the pre-trade check would refuse.
            while s.contracts > 1 and _over_limit(s.usage):
                s.contracts -= 1
                s.usage = await ctx.risk.usage(_sale_plan(s), s.contracts)
            s.fit = portfolio_fit_score(fit_usage(s.usage))
            d = decide(s.quant, s.advisor, s.fit, income.decision)
            s.total, s.execute = d.total, d.execute
            if _over_limit(s.usage):
                s.execute = False
                s.decision = "over_risk_limit"  # which ones: the stored limit usage
            else:
                s.decision = "selected" if d.execute else "below_threshold"

    def _propose(
        self,
        report: ScreenReport,
        cash_free: Decimal,
        shares_held: dict[str, int],
        covered: Counter[str],
        wheel_ids: dict[str, str],
    ) -> None:
        """Best contract per name and kind, best first, while collateral lasts."""
        best: dict[tuple[str, str], Scored] = {}
        for s in report.scored:
            if not s.execute:
                continue
            key = (s.candidate.underlying, s.candidate.kind)
            if key not in best or (s.total, s.candidate.annual_yield_pct) > (
                best[key].total,
                best[key].candidate.annual_yield_pct,
            ):
                best[key] = s
        slippage = self.ctx.income.orders.max_slippage_pct
        for s in sorted(best.values(), key=lambda x: (-x.total, x.candidate.symbol)):
            c = s.candidate
            if c.kind == "cash_secured_put":
                need = c.strike * MULTIPLIER * s.contracts
                if need > cash_free:
                    s.decision = "no_cash_left"
                    continue
                cash_free -= need
            else:
                free = shares_held.get(c.underlying, 0) - covered[c.underlying]
                if free < s.contracts * MULTIPLIER:
                    s.decision = "no_shares_left"
                    continue
                covered[c.underlying] += s.contracts * MULTIPLIER
            s.decision = "proposed"
            # Calls on shares a wheel holds belong to that cycle (its cost basis guards them).
            wheel_id = wheel_ids.get(c.underlying) if c.kind == "covered_call" else None
            report.proposals.append(
                (
                    Proposal(
                        kind=c.kind,
                        symbol=c.symbol,
                        contracts=s.contracts,
                        min_credit=min_credit(c.mid, slippage),
                        intent_key=open_intent_key(report.session_date, c.symbol),
                        entry_iv=None if c.iv is None else Decimal(str(round(c.iv, 6))),
                        wheel_id=wheel_id,
                        score=s.total,
                        rationale=s.rationale,
                    ),
                    s,
                )
            )

    async def _iv_percentile(
        self, name: str, chain: list[OptionSnapshot], spot: Decimal, today: date
    ) -> Decimal | None:
        current = atm_iv(chain, spot, ATM_DAYS, self.ctx.clock.now())
        if current is None:
            return None
        history = await self.ctx.iv_history.history(name, today)
        return iv_percentile(history, current, self.ctx.settings.current.hedging)


# The trade is sized to the per-trade, cash and covered-share limits, so they say nothing of
# how it fits the book; the fit is the headroom left on the book-wide limits.
BOOK_LIMITS = ("positions", "net_delta", "net_gamma", "vega")


def _over_limit(usage: dict[str, Decimal]) -> bool:
    return any(v > 1 for v in usage.values())


def fit_usage(usage: dict[str, Decimal]) -> dict[str, Decimal]:
    """The limit usages the portfolio-fit score reads: position count, sectors, greeks."""
    return {k: v for k, v in usage.items() if k in BOOK_LIMITS or k.startswith("sector:")}


def _sale_plan(s: Scored) -> ExecutionPlan:
    c = s.candidate
    return ExecutionPlan(
        intent_key=f"income-assess:{c.symbol}",
        strategy="income",
        purpose="open",
        legs=(OrderLeg(c.symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),),
        qty=max(1, s.contracts),
        direction="credit",
    )


def _with_candidate(p: Proposal, candidate_id: int) -> Proposal:
    return dataclasses.replace(p, candidate_id=candidate_id)
