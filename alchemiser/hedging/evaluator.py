"""The hedge evaluation: from the book and the market to a sized, explained recommendation.

It fetches what the pure rules need (account, positions, the vol index from
the SPY chain, the hedge underlying's chain, the active hedges and the spend
ledger), runs exposure -> regime -> selection -> sizing, records the outcome
with its explanation, and puts a ``HedgeEvaluationCompleted`` event on the
execution queue with a dedupe key per account, session date and plan id.
Missing or bad data fails closed: the evaluation is recorded as skipped,
nothing is bought.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from alchemiser.broker.base import BrokerError
from alchemiser.domain.trading import OptionSnapshot
from alchemiser.hedging.book import book_payoff, leg_symbols, spots
from alchemiser.hedging.context import EXECUTION_QUEUE, VOL_INDEX_UNDERLYING, HedgingContext
from alchemiser.hedging.events import Recommendation, hedge_evaluation_completed
from alchemiser.hedging.exposure import ExposureReport, compute_exposure
from alchemiser.hedging.selection import NoSuitableContract, Selection, select_put, select_spread
from alchemiser.hedging.sizing import (
    SizingDecision,
    SizingInputs,
    effective_template,
    floor_scenario,
    size_hedge,
)
from alchemiser.hedging.vol_regime import (
    VolRegime,
    VolRegimeError,
    atm_iv,
    current_regime,
    iv_percentile,
)
from alchemiser.store.audit import current_correlation_id, to_json_safe

log = structlog.stdlib.get_logger("alchemiser.hedging")

# Chain windows: the vol index needs the expiries around 30 days; selection looks 14-180 DTE.
VOL_INDEX_WINDOW_DAYS = 60
SELECTION_WINDOW_DAYS = (14, 185)


@dataclass
class EvaluationOutcome:
    event: dict[str, Any]
    explanation: dict[str, Any]
    decision: SizingDecision | None
    selection: Selection | None
    enqueued: bool = False
    duplicate: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def skip_reason(self) -> str | None:
        reason = self.event.get("skip_reason")
        return str(reason) if reason is not None else None


def dedupe_key(account: str, session_date: date, plan_id: str | None) -> str:
    return f"hedge-eval:{account}:{session_date.isoformat()}:{plan_id or '-'}"


class HedgeEvaluator:
    def __init__(self, ctx: HedgingContext) -> None:
        self.ctx = ctx

    async def evaluate(
        self, session_date: date, plan_id: str | None = None, *, dry_run: bool = False
    ) -> EvaluationOutcome:
        """Evaluate once; unless ``dry_run``, record it and enqueue the execution."""
        ctx = self.ctx
        correlation_id = current_correlation_id() or uuid.uuid4().hex
        outcome = await self.assess(session_date, plan_id, correlation_id=correlation_id)
        self._log(outcome)
        if dry_run:
            return outcome
        event = outcome.event
        stored = await ctx.store.save_evaluation(
            session_date, plan_id, correlation_id, event, outcome.explanation, outcome.skip_reason
        )
        if not stored:
            outcome.duplicate = True
            log.info(
                "hedge_evaluation_already_done",
                session_date=session_date.isoformat(),
                plan_id=plan_id,
            )
            return outcome
        await ctx.audit.record(
            "EVALUATION_COMPLETED",
            related_ids={"plan_id": plan_id or ""},
            details={"event": event, "explanation": outcome.explanation},
            correlation_id=correlation_id,
        )
        if event["recommendations"]:
            result = await ctx.queue.enqueue(
                EXECUTION_QUEUE,
                event,
                dedupe_key=dedupe_key(ctx.account, session_date, plan_id),
                correlation_id=correlation_id,
            )
            outcome.enqueued = result.created
        return outcome

    async def assess(
        self,
        session_date: date,
        plan_id: str | None = None,
        *,
        correlation_id: str | None = None,
        replacing: str | None = None,
        template: str | None = None,
    ) -> EvaluationOutcome:
        """Fetch, size and select; record nothing. ``replacing``: a hedge being rolled,
        left out of the book (its payoff and its slot) so its replacement is sized fresh."""
        ctx = self.ctx
        settings = ctx.hedging
        correlation_id = correlation_id or current_correlation_id() or uuid.uuid4().hex
        now = ctx.clock.now()
        explanation: dict[str, Any] = {"at": now.isoformat(), "plan_id": plan_id}
        if replacing:
            explanation["replacing"] = replacing
        decision: SizingDecision | None = None
        selection: Selection | None = None
        nav = Decimal(0)
        exposure: ExposureReport | None = None
        regime: VolRegime | None = None
        try:
            account = await ctx.broker.get_account()
            nav = account.equity
            positions = await ctx.broker.get_positions()
            everything = await ctx.store.active()
            active = [h for h in everything if h.id != replacing]
            market_open = await ctx.broker.is_market_open()
            switch = await ctx.store.kill_switch()
            mtd, ytd = await ctx.store.spend(now)
            exposure = compute_exposure(
                positions, ctx.reference, settings, nav, hedge_symbols=leg_symbols(everything)
            )
            explanation["exposure"] = _exposure_summary(exposure)
            explanation["spend"] = {"month_to_date": mtd, "year_to_date": ytd}
            data_ok, regime, notes = await self._regime(now)
            explanation["notes"] = notes
            first = template or settings.template
            decision, selection = await self._decide(
                first,
                nav,
                exposure,
                regime,
                mtd,
                ytd,
                active,
                market_open,
                data_ok,
                switch.enabled,
                now,
                session_date,
                explanation,
            )
            if decision.switch_template_to is not None:
                explanation["first_try"] = _decision_summary(decision)
                decision, selection = await self._decide(
                    decision.switch_template_to,
                    nav,
                    exposure,
                    regime,
                    mtd,
                    ytd,
                    active,
                    market_open,
                    data_ok,
                    switch.enabled,
                    now,
                    session_date,
                    explanation,
                )
        except (BrokerError, TimeoutError) as exc:
            log.warning("hedge_evaluation_data_unavailable", error=str(exc))
            explanation["data_error"] = str(exc)
            decision = None
        recommendations = self._recommendations(decision, selection, exposure)
        skip_reason = self._skip_reason(decision, selection, explanation)
        event = hedge_evaluation_completed(
            correlation_id=correlation_id,
            plan_id=plan_id,
            portfolio_nav=nav,
            recommendations=recommendations,
            vix_tier=regime.tier if regime else None,
            exposure_multiplier=exposure.multiplier if exposure else Decimal(0),
            skip_reason=skip_reason,
            extra={"session_date": session_date.isoformat(), "account": ctx.account},
        )
        if decision is not None:
            explanation["decision"] = _decision_summary(decision)
        return EvaluationOutcome(event, to_json_safe(explanation), decision, selection)

    async def _regime(self, now: datetime) -> tuple[bool, VolRegime | None, list[str]]:
        """The volatility regime from the SPY chain (fails closed: data_ok False)."""
        ctx = self.ctx
        notes: list[str] = []
        chain = await ctx.broker.get_option_chain(
            VOL_INDEX_UNDERLYING, now.date(), now.date() + timedelta(days=VOL_INDEX_WINDOW_DAYS)
        )
        vixy: Decimal | None = None
        if ctx.hedging.vol_index.vixy_scale is not None:
            quotes = await ctx.broker.get_stock_quotes(["VIXY"])
            vixy = quotes["VIXY"].last if "VIXY" in quotes else None
        try:
            regime = current_regime(chain, now, ctx.rate, ctx.hedging, vixy_price=vixy)
        except VolRegimeError as exc:
            notes.append(f"no volatility index: {exc}")
            return False, None, notes
        return True, regime, notes

    async def _decide(
        self,
        template: str,
        nav: Decimal,
        exposure: ExposureReport,
        regime: VolRegime | None,
        mtd: Decimal,
        ytd: Decimal,
        active: list[Any],
        market_open: bool,
        data_ok: bool,
        switch_enabled: bool,
        now: datetime,
        session_date: date,
        explanation: dict[str, Any],
    ) -> tuple[SizingDecision, Selection | None]:
        ctx = self.ctx
        settings = ctx.hedging
        selection: Selection | None = None
        existing = Decimal(0)
        existing_floor: Decimal | None = None
        if regime is not None and exposure.underlying is not None:
            eff = effective_template(settings, regime, template)  # type: ignore[arg-type]
            existing = await book_payoff(
                ctx.broker,
                active,
                now,
                ctx.rate,
                eff.scenario_move_pct,
                eff.scenario_vol_shift_points,
            )
            floor_move, floor_shift = floor_scenario(settings)
            if (floor_move, floor_shift) != (eff.scenario_move_pct, eff.scenario_vol_shift_points):
                existing_floor = await book_payoff(
                    ctx.broker, active, now, ctx.rate, floor_move, floor_shift
                )
            found = await self._select(template, exposure.underlying, regime, now, session_date)
            if isinstance(found, NoSuitableContract):
                explanation["no_contract"] = {
                    "template": template,
                    "reason": found.reason,
                    "counts_by_gate": dict(found.counts_by_gate),
                    "considered": found.considered,
                }
                log.warning(
                    "No suitable contract found",
                    underlying=exposure.underlying,
                    template=template,
                    reason=found.reason,
                    counts_by_gate=dict(found.counts_by_gate),
                )
            else:
                selection = found
                explanation["selection"] = _selection_summary(found)
        inputs = SizingInputs(
            nav=nav,
            exposure=exposure,
            regime=regime,
            month_to_date_spend=mtd,
            year_to_date_spend=ytd,
            active_hedges=len(active),
            existing_payoff=existing,
            market_open=market_open,
            data_ok=data_ok,
            hedging_enabled=switch_enabled,
            kill_switch_tripped=not switch_enabled,
            candidate=selection.candidate() if selection is not None else None,
            existing_floor_payoff=existing_floor,
            template=template,  # type: ignore[arg-type]
        )
        decision = size_hedge(inputs, settings)
        if (
            decision.skip_reason == "budget_below_one_contract"
            and decision.budget is not None
            and decision.budget > 0
            and exposure.underlying is not None
            and regime is not None
        ):
            # The best contract costs more than today's budget: choose again among those
            # the budget can buy (further out of the money or nearer expiry), if any.
            cheaper = await self._select(
                template, exposure.underlying, regime, now, session_date, decision.budget
            )
            if isinstance(cheaper, Selection):
                explanation["over_budget_choice"] = explanation.get("selection")
                explanation["selection"] = _selection_summary(cheaper)
                retry = size_hedge(
                    dataclasses.replace(inputs, candidate=cheaper.candidate()), settings
                )
                if retry.contracts > 0:
                    return retry, cheaper
            else:
                explanation["within_budget"] = (
                    f"no contract within {decision.budget}: {cheaper.reason}"
                )
        return decision, selection

    async def _select(
        self,
        template: str,
        underlying: str,
        regime: VolRegime,
        now: datetime,
        session_date: date,
        max_premium: Decimal | None = None,
    ) -> Selection | NoSuitableContract:
        ctx = self.ctx
        low, high = SELECTION_WINDOW_DAYS
        chain = await ctx.broker.get_option_chain(
            underlying, now.date() + timedelta(days=low), now.date() + timedelta(days=high)
        )
        if max_premium is not None:
            # The ask bounds what one contract may cost (the limit never passes it).
            chain = [
                q for q in chain if q.contract.right.value == "C" or q.ask * 100 <= max_premium
            ]
        spot = (await spots(ctx.broker, [underlying]))[underlying]
        eff = effective_template(ctx.hedging, regime, template)  # type: ignore[arg-type]
        percentile = await self._iv_percentile(
            underlying, chain, spot, eff.target_dte, now, session_date
        )
        if template == "smoothing":
            return select_spread(
                chain, spot, now, ctx.rate, regime, percentile, ctx.hedging, underlying=underlying
            )
        return select_put(
            chain, spot, now, ctx.rate, regime, percentile, ctx.hedging, underlying=underlying
        )

    async def _iv_percentile(
        self,
        underlying: str,
        chain: list[OptionSnapshot],
        spot: Decimal,
        target_dte: int,
        now: datetime,
        session_date: date,
    ) -> Decimal | None:
        current = atm_iv(chain, spot, target_dte, now)
        if current is None:
            return None
        history = await self.ctx.iv_history.history(underlying, session_date)
        return iv_percentile(history, current, self.ctx.hedging)

    def _recommendations(
        self,
        decision: SizingDecision | None,
        selection: Selection | None,
        exposure: ExposureReport | None,
    ) -> list[Recommendation]:
        if decision is None or selection is None or decision.contracts <= 0 or exposure is None:
            return []
        long_leg = selection.legs[0]
        short_leg = selection.legs[1] if len(selection.legs) > 1 else None
        return [
            Recommendation(
                underlying_symbol=selection.underlying,
                target_delta=abs(Decimal(str(round(long_leg.greeks.delta, 4)))),
                target_dte=selection.dte,
                premium_budget=decision.budget or decision.premium,
                contracts_estimated=decision.contracts,
                hedge_template=decision.template,
                option_symbol=long_leg.symbol,
                short_option_symbol=short_leg.symbol if short_leg else None,
                estimated_premium=decision.premium,
                max_limit_price=selection.max_limit_price,
            )
        ]

    @staticmethod
    def _skip_reason(
        decision: SizingDecision | None, selection: Selection | None, explanation: dict[str, Any]
    ) -> str | None:
        if decision is None:
            return "data_unavailable"
        if decision.skip_reason is not None:
            return decision.skip_reason
        if selection is None:
            return "no_suitable_contract"
        if decision.contracts <= 0:
            return "budget_below_one_contract"
        return None

    @staticmethod
    def _log(outcome: EvaluationOutcome) -> None:
        event = outcome.event
        decision = outcome.decision
        fields = {
            "nav": event["portfolio_nav"],
            "vix_tier": event["vix_tier"],
            "exposure_multiplier": event["exposure_multiplier"],
            "recommendations": event["recommendations"],
        }
        if decision is not None:
            fields.update(
                target_payoff=str(decision.target_payoff),
                affordable_payoff=str(decision.affordable_payoff),
                binding_constraint=decision.binding_constraint,
                shortfall=str(decision.shortfall),
                floor_met=decision.floor_met,
            )
        if outcome.skip_reason:
            log.info("Hedge evaluation was skipped", skip_reason=outcome.skip_reason, **fields)
        else:
            log.info("Hedge evaluation completed", **fields)


def _exposure_summary(report: ExposureReport) -> dict[str, Any]:
    return {
        "underlying": report.underlying,
        "gross": report.gross,
        "net": report.net,
        "leverage": report.leverage,
        "multiplier": report.multiplier,
        "equity_positions": report.equity_position_count,
        "by_etf": {etf: e.exposure for etf, e in report.by_etf.items()},
    }


def _selection_summary(selection: Selection) -> dict[str, Any]:
    return {
        "legs": [leg.symbol for leg in selection.legs],
        "expiry": selection.expiry,
        "dte": selection.dte,
        "mid": selection.mid,
        "max_limit_price": selection.max_limit_price,
        "premium_per_contract": selection.premium_per_contract,
        "payoff_per_contract": selection.payoff_per_contract,
        "payoff_multiple": selection.payoff_multiple,
        "why": selection.why,
    }


def _decision_summary(decision: SizingDecision) -> dict[str, Any]:
    return {
        "template": decision.template,
        "contracts": decision.contracts,
        "premium": decision.premium,
        "skip_reason": decision.skip_reason,
        "tier": decision.tier,
        "rich_adjusted": decision.rich_adjusted,
        "budget": decision.budget,
        "binding_constraint": decision.binding_constraint,
        "target_payoff": decision.target_payoff,
        "affordable_payoff": decision.affordable_payoff,
        "projected_payoff": decision.projected_payoff,
        "floor": decision.floor,
        "projected_floor_payoff": decision.projected_floor_payoff,
        "shortfall": decision.shortfall,
        "floor_met": decision.floor_met,
        "fallback_applied": decision.fallback_applied,
        "year_to_date_pct_after": decision.year_to_date_pct_after,
        "annual_band": decision.annual_band,
    }
