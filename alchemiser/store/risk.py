"""Repositories of the risk engine: stored closes, risk snapshots, daily risk, weekly reviews.

Closes are market data (no account); everything else belongs to one account.
Money comes back as Decimal and is summed in Python (see README "Database").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.store.audit import to_json_safe
from alchemiser.store.engine import dialect_insert
from alchemiser.store.models import PriceHistory, RiskDaily, RiskSnapshot, WeeklyReview

__all__ = [
    "DailyRiskRow",
    "HistoryCoverage",
    "PriceHistoryStore",
    "RiskStore",
    "SnapshotRow",
    "WeeklyReviewRow",
]

# Rows per INSERT: SQLite allows at most 32766 bound parameters per statement.
_CHUNK = 1000
INTRADAY = "intraday"
EOD = "eod"


@dataclass(frozen=True)
class HistoryCoverage:
    symbol: str
    sessions: int
    first: date
    last: date


class PriceHistoryStore:
    """Daily closes per symbol (one per session date)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(
        self, closes: Mapping[str, Decimal], session_date: date, source: str, at: datetime
    ) -> None:
        """Store one session's closes; a close already stored for that date is replaced."""
        rows = [(symbol, session_date, close) for symbol, close in sorted(closes.items())]
        async with self._sessions() as s, s.begin():
            await self._upsert(s, rows, source, at)

    async def import_closes(
        self, symbol: str, closes: Sequence[tuple[date, Decimal]], at: datetime
    ) -> tuple[int, int]:
        """Store a user's closes of ``symbol`` in one transaction: (new, replaced) counts."""
        dates = [d for d, _ in closes]
        async with self._sessions() as s, s.begin():
            existing = set(
                await s.scalars(
                    select(PriceHistory.session_date).where(
                        PriceHistory.symbol == symbol,
                        PriceHistory.session_date >= min(dates, default=date.max),
                        PriceHistory.session_date <= max(dates, default=date.min),
                    )
                )
            )
            await self._upsert(s, [(symbol, d, c) for d, c in closes], "import", at)
        replaced = sum(1 for d in dates if d in existing)
        return len(dates) - replaced, replaced

    @staticmethod
    async def _upsert(
        s: AsyncSession, rows: Sequence[tuple[str, date, Decimal]], source: str, at: datetime
    ) -> None:
        insert = dialect_insert(s)
        for i in range(0, len(rows), _CHUNK):
            values = [
                {
                    "symbol": symbol,
                    "session_date": day,
                    "close": close,
                    "source": source,
                    "recorded_at": at,
                }
                for symbol, day, close in rows[i : i + _CHUNK]
            ]
            stmt = insert(PriceHistory).values(values)
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=[PriceHistory.symbol, PriceHistory.session_date],
                    set_={
                        "close": stmt.excluded.close,
                        "source": stmt.excluded.source,
                        "recorded_at": stmt.excluded.recorded_at,
                    },
                )
            )

    async def closes(
        self, symbols: Sequence[str], first: date, last: date
    ) -> dict[str, dict[date, Decimal]]:
        """Closes of each symbol between two dates (inclusive); a symbol with none maps to {}."""
        out: dict[str, dict[date, Decimal]] = {s: {} for s in symbols}
        if not symbols:
            return out
        stmt = select(PriceHistory.symbol, PriceHistory.session_date, PriceHistory.close).where(
            PriceHistory.symbol.in_(list(symbols)),
            PriceHistory.session_date >= first,
            PriceHistory.session_date <= last,
        )
        async with self._sessions() as s:
            for symbol, day, close in (await s.execute(stmt)).all():
                out[symbol][day] = close
        return out

    async def coverage(self) -> list[HistoryCoverage]:
        """Per symbol: how many closes are stored, the first and the last date."""
        stmt = (
            select(
                PriceHistory.symbol,
                func.count(),
                func.min(PriceHistory.session_date),
                func.max(PriceHistory.session_date),
            )
            .group_by(PriceHistory.symbol)
            .order_by(PriceHistory.symbol)
        )
        async with self._sessions() as s:
            return [HistoryCoverage(*row) for row in (await s.execute(stmt)).all()]


@dataclass(frozen=True)
class SnapshotRow:
    at: datetime
    session_date: date
    kind: str
    nav: Decimal
    greeks: dict[str, Any]
    limits: list[dict[str, Any]]


@dataclass(frozen=True)
class DailyRiskRow:
    session_date: date
    at: datetime
    nav: Decimal
    confidence: Decimal
    var_historical: Decimal | None
    es_historical: Decimal | None
    var_delta_gamma: Decimal | None
    var_delta_normal: Decimal | None
    sessions_used: int
    note: str | None
    stress: list[dict[str, Any]]
    hedge_payoff_pct_nav: Decimal | None
    details: dict[str, Any]


@dataclass(frozen=True)
class WeeklyReviewRow:
    week_ending: date
    at: datetime
    summary: dict[str, Any]
    text: str


def _snapshot(row: RiskSnapshot) -> SnapshotRow:
    return SnapshotRow(row.at, row.session_date, row.kind, row.nav, row.greeks, row.limits)


def _daily(row: RiskDaily) -> DailyRiskRow:
    return DailyRiskRow(
        session_date=row.session_date,
        at=row.at,
        nav=row.nav,
        confidence=row.confidence,
        var_historical=row.var_historical,
        es_historical=row.es_historical,
        var_delta_gamma=row.var_delta_gamma,
        var_delta_normal=row.var_delta_normal,
        sessions_used=row.sessions_used,
        note=row.note,
        stress=row.stress,
        hedge_payoff_pct_nav=row.hedge_payoff_pct_nav,
        details=row.details,
    )


class RiskStore:
    """Risk snapshots, daily risk rows and weekly reviews of one account."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], account: str) -> None:
        self._sessions = sessions
        self.account = account

    # -- snapshots -------------------------------------------------------------------

    async def add_snapshot(self, snap: SnapshotRow) -> None:
        """Store a snapshot; an "eod" snapshot replaces that session's earlier one (a re-run)."""
        async with self._sessions() as s, s.begin():
            if snap.kind == EOD:
                await s.execute(
                    delete(RiskSnapshot).where(
                        RiskSnapshot.account == self.account,
                        RiskSnapshot.session_date == snap.session_date,
                        RiskSnapshot.kind == EOD,
                    )
                )
            s.add(
                RiskSnapshot(
                    account=self.account,
                    at=snap.at,
                    session_date=snap.session_date,
                    kind=snap.kind,
                    nav=snap.nav,
                    greeks=to_json_safe(snap.greeks),
                    limits=to_json_safe(snap.limits),
                )
            )

    async def last_eod_before(self, session_date: date) -> SnapshotRow | None:
        """The latest end-of-day snapshot of a session before ``session_date``."""
        stmt = (
            select(RiskSnapshot)
            .where(
                RiskSnapshot.account == self.account,
                RiskSnapshot.kind == EOD,
                RiskSnapshot.session_date < session_date,
            )
            .order_by(RiskSnapshot.session_date.desc(), RiskSnapshot.id.desc())
            .limit(1)
        )
        async with self._sessions() as s:
            row = (await s.scalars(stmt)).first()
            return None if row is None else _snapshot(row)

    async def snapshots(
        self, first: date, last: date, kind: str | None = None
    ) -> list[SnapshotRow]:
        """Snapshots of sessions ``first``..``last`` (inclusive), oldest first."""
        stmt = select(RiskSnapshot).where(
            RiskSnapshot.account == self.account,
            RiskSnapshot.session_date >= first,
            RiskSnapshot.session_date <= last,
        )
        if kind is not None:
            stmt = stmt.where(RiskSnapshot.kind == kind)
        async with self._sessions() as s:
            rows = await s.scalars(stmt.order_by(RiskSnapshot.at, RiskSnapshot.id))
            return [_snapshot(r) for r in rows]

    async def count_snapshots(self, first: date, last: date, kind: str = INTRADAY) -> int:
        stmt = select(func.count()).where(
            RiskSnapshot.account == self.account,
            RiskSnapshot.kind == kind,
            RiskSnapshot.session_date >= first,
            RiskSnapshot.session_date <= last,
        )
        async with self._sessions() as s:
            return int((await s.execute(stmt)).scalar_one())

    # -- daily risk ------------------------------------------------------------------

    async def save_daily(self, row: DailyRiskRow) -> None:
        """Store the session's end-of-day risk (a re-run the same day replaces it)."""
        values: dict[str, Any] = {
            "account": self.account,
            "session_date": row.session_date,
            "at": row.at,
            "nav": row.nav,
            "confidence": row.confidence,
            "var_historical": row.var_historical,
            "es_historical": row.es_historical,
            "var_delta_gamma": row.var_delta_gamma,
            "var_delta_normal": row.var_delta_normal,
            "sessions_used": row.sessions_used,
            "note": row.note,
            "stress": to_json_safe(row.stress),
            "hedge_payoff_pct_nav": row.hedge_payoff_pct_nav,
            "details": to_json_safe(row.details),
        }
        async with self._sessions() as s, s.begin():
            stmt = dialect_insert(s)(RiskDaily).values(**values)
            update = {k: getattr(stmt.excluded, k) for k in values if k != "account"}
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=[RiskDaily.account, RiskDaily.session_date], set_=update
                )
            )

    async def daily(self, first: date, last: date) -> list[DailyRiskRow]:
        """Daily rows of sessions ``first``..``last`` (inclusive), oldest first."""
        stmt = (
            select(RiskDaily)
            .where(
                RiskDaily.account == self.account,
                RiskDaily.session_date >= first,
                RiskDaily.session_date <= last,
            )
            .order_by(RiskDaily.session_date)
        )
        async with self._sessions() as s:
            return [_daily(r) for r in await s.scalars(stmt)]

    async def latest_daily(self, *, before: date | None = None) -> DailyRiskRow | None:
        """The newest daily row (of a session before ``before``, if given)."""
        stmt = select(RiskDaily).where(RiskDaily.account == self.account)
        if before is not None:
            stmt = stmt.where(RiskDaily.session_date < before)
        stmt = stmt.order_by(RiskDaily.session_date.desc()).limit(1)
        async with self._sessions() as s:
            row = (await s.scalars(stmt)).first()
            return None if row is None else _daily(row)

    # -- weekly reviews --------------------------------------------------------------

    async def save_weekly(self, review: WeeklyReviewRow) -> None:
        values: dict[str, Any] = {
            "account": self.account,
            "week_ending": review.week_ending,
            "at": review.at,
            "summary": to_json_safe(review.summary),
            "text": review.text,
        }
        async with self._sessions() as s, s.begin():
            stmt = dialect_insert(s)(WeeklyReview).values(**values)
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=[WeeklyReview.account, WeeklyReview.week_ending],
                    set_={
                        "at": stmt.excluded.at,
                        "summary": stmt.excluded.summary,
                        "text": stmt.excluded.text,
                    },
                )
            )

    async def weekly(self, limit: int = 10) -> list[WeeklyReviewRow]:
        """Newest first."""
        stmt = (
            select(WeeklyReview)
            .where(WeeklyReview.account == self.account)
            .order_by(WeeklyReview.week_ending.desc())
            .limit(limit)
        )
        async with self._sessions() as s:
            return [
                WeeklyReviewRow(r.week_ending, r.at, r.summary, r.text)
                for r in await s.scalars(stmt)
            ]
