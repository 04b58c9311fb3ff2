"""Benchmark: synthetic option chains and paths (a print, not a test).

Run from the repository root:

    .venv/bin/python tests/sim/bench_chain.py [--repeats 20]

Times, best of ``--repeats`` (median too):

- a SPY chain cut to about 5,000 contracts, as ``OptionSnapshot`` objects:
  *warm* (the session's listing is cached, another instant of the same day)
  and *cold* (the first question of a new session: listing, open interest,
  contract objects);
- the same chain as arrays (``chain_arrays``);
- ``option_quotes`` for 50 symbols;
- generating 30 years of daily paths for the default universe.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from alchemiser.clock import NEW_YORK
from alchemiser.sim import SimMarket

TARGET_MS = 50.0


def _best(fn: Callable[[int], object], repeats: int) -> tuple[float, float]:
    times = []
    for k in range(repeats):
        t = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - t)
    return min(times) * 1e3, statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    market = SimMarket(seed=1, start=date(2020, 1, 2))
    day = date(2021, 6, 9)
    at = datetime.combine(day, dtime(11, 0), NEW_YORK)
    market.chain("SPY", at)  # generate the path and the listing once
    full = len(market.chain_arrays("SPY", at))
    # Cut the chain by expiry to about 5,000 contracts.
    exps = market.expiries("SPY", day)
    last = exps[0]
    for e in exps:
        if len(market.chain_arrays("SPY", at, expiry_to=e)) > 5000:
            break
        last = e
    n = len(market.chain("SPY", at, expiry_to=last))
    print(f"SPY chain on {day}: {full} contracts listed; benchmark slice {n} (expiries to {last})")

    warm = _best(
        lambda k: market.chain("SPY", at + timedelta(seconds=37 * k + 1), expiry_to=last),
        args.repeats,
    )
    arrays = _best(
        lambda k: market.chain_arrays("SPY", at + timedelta(seconds=37 * k + 1), expiry_to=last),
        args.repeats,
    )
    sessions = market.sessions(day + timedelta(days=1), day + timedelta(days=400))

    def cold(k: int) -> None:
        d = sessions[k]
        market.chain("SPY", datetime.combine(d, dtime(11, 0), NEW_YORK), expiry_to=last)

    for d in sessions[: args.repeats]:  # path only, so "cold" times the listing and objects
        market.spot("SPY", datetime.combine(d, dtime(11, 0), NEW_YORK))
    cold_t = _best(cold, args.repeats)
    symbols = [s.symbol for s in market.chain("SPY", at)[::97]][:50]
    quotes = _best(
        lambda k: market.option_quotes(symbols, at + timedelta(seconds=k + 1)), args.repeats
    )

    def paths(k: int) -> None:
        m = SimMarket(seed=100 + k, start=date(1994, 1, 3))
        m.close_price("SPY", date(2023, 12, 29))

    paths(-1)  # build the calendar and vol tables once
    gen = _best(paths, max(3, args.repeats // 4))
    print(f"{'':32s}{'best ms':>10s}{'median ms':>12s}")
    for name, (best, med) in (
        (f"chain, warm ({n} snapshots)", warm),
        (f"chain, cold new session ({n})", cold_t),
        (f"chain_arrays ({n} rows)", arrays),
        (f"option_quotes ({len(symbols)} symbols)", quotes),
        ("30 years of daily paths", gen),
    ):
        print(f"{name:32s}{best:10.2f}{med:12.2f}")
    verdict = "met" if warm[0] < TARGET_MS else "MISSED"
    print(f"target: a 5,000-contract chain well under {TARGET_MS:.0f} ms (warm): {verdict}")


if __name__ == "__main__":
    main()
