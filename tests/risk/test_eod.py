"""End of day on the simulator: closes recorded, VaR/ES stored once the stored history is long
enough (imported from the shipped data), and a row saying why when it is not."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.risk.eod import end_of_day
from alchemiser.risk.history import parse_closes_csv
from alchemiser.risk_jobs import risk_monitor
from alchemiser.store.risk import PriceHistoryStore
from tests.conftest import SHARED_DATA
from tests.helpers import make_services

D = Decimal
SESSION = date(2026, 3, 2)  # a Monday
# Imported history ends on Thursday 26 February: the sim's own close of 2 March is not
# joined to a real close (no close on Friday 27), so no return mixes the two markets.
IMPORTED_UNTIL = date(2026, 2, 26)


def _config(tmp_path: Path) -> Path:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(
        'name = "etfs"\n[account]\nnav = 200000\noptions_level = 3\n'
        "[book]\ngross_exposure = 1.5\n[book.weights]\nSPY = 50\nQQQ = 30\nIWM = 20\n"
    )
    config = tmp_path / "alchemiser.toml"
    config.write_text(f'[sim]\nstart_date = {SESSION.isoformat()}\nscenario = "{scenario}"\n')
    return config


def _closes(symbol: str, file: str, last: int | None = None) -> list[tuple[date, Decimal]]:
    rows = parse_closes_csv((SHARED_DATA / file).read_text())
    rows = [r for r in rows if r[0] <= IMPORTED_UNTIL]
    return rows[-last:] if last else rows


async def test_var_is_stored_once_every_underlying_has_enough_history(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = ManualClock(datetime.combine(SESSION, time(16, 10), NEW_YORK))
    services = await make_services(engine, clock, _config(tmp_path))
    prices = PriceHistoryStore(services.sessions)
    monitor = risk_monitor(services)
    now = clock.now()
    await prices.import_closes("SPY", _closes("SPY", "SPY_daily.csv", last=300), now)
    await prices.import_closes("QQQ", _closes("QQQ", "QQQ_daily.csv", last=300), now)
    await prices.import_closes("IWM", _closes("IWM", "IWM_daily_adjusted.csv", last=41), now)

    async def eod() -> object:
        return await end_of_day(
            monitor,
            services.broker,
            prices,
            lambda: services.settings.current.risk,
            clock,
            services.calendar,
            SESSION,
        )

    short = await eod()
    row = await monitor.store.latest_daily()
    assert row is not None and row == short
    assert row.var_historical is None and row.es_historical is None
    assert row.note == "insufficient history: 40 of 126 sessions for IWM"
    assert row.sessions_used == 0 and row.stress  # the stress table is stored regardless
    # Today's closes were captured from the broker, after the close.
    quotes = await services.broker.get_stock_quotes(["SPY", "QQQ", "IWM"])
    stored = await prices.closes(["SPY", "QQQ", "IWM"], SESSION, SESSION)
    assert {s: c[SESSION] for s, c in stored.items()} == {s: q.last for s, q in quotes.items()}

    await prices.import_closes("IWM", _closes("IWM", "IWM_daily_adjusted.csv", last=300), now)
    await eod()  # a re-run the same day replaces the row
    [row] = await monitor.store.daily(SESSION - timedelta(days=7), SESSION)
    nav = row.nav
    assert row.note is None and row.confidence == D("0.95")
    # 252 returns in the window, less the two touching Friday 27 February (no close).
    assert row.sessions_used == 250
    assert row.var_historical is not None and row.es_historical is not None
    assert row.var_delta_gamma is not None and row.var_delta_normal is not None
    assert D("0.005") * nav < row.var_historical < D("0.10") * nav
    assert row.es_historical >= row.var_historical
    # A stock-only book is linear: delta-gamma is delta-normal, close to the historical VaR.
    assert row.var_delta_gamma == row.var_delta_normal
    assert D("0.5") < row.var_delta_gamma / row.var_historical < D("2")
    assert set(row.details["es_by_strategy"]) == {"hedge", "income", "equity"}
    print(
        f"\n1-day 95 % VaR of a 1.5x SPY/QQQ/IWM book over {row.sessions_used} sessions to "
        f"{IMPORTED_UNTIL}: historical {row.var_historical / nav:.2%} NAV, ES "
        f"{row.es_historical / nav:.2%}, delta-gamma {row.var_delta_gamma / nav:.2%}"
    )
    # The eod snapshot is the next session's daily-loss reference.
    eod_snap = await monitor.store.last_eod_before(SESSION + timedelta(days=1))
    assert eod_snap is not None and eod_snap.nav == nav and eod_snap.session_date == SESSION
