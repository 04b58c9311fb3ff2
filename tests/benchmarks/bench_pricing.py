"""Benchmark: vectorised BSM greeks and implied volatility against QuantLib.

Run from the repository root (needs the ``bench`` extra, i.e. QuantLib):

    .venv/bin/python tests/benchmarks/bench_pricing.py [--sizes 10000,100000,1000000]

For each chain size it times, on the same synthetic chain in the same run:

- ours: ``bsm_greeks`` (price + delta, gamma, theta, vega, rho) and
  ``implied_vol``, whole-array calls, best of ``--repeats`` (median shown too);
- QuantLib's Python bindings: ``BlackCalculator`` (same six outputs) and
  ``blackFormulaImpliedStdDev`` (tolerance 1e-10 on σ√T), one call per option
  in a Python loop. That loop is timed on the first ``--ql-sample`` options of
  the chain (all of them when the chain is smaller), best of ``--ql-repeats``,
  and reported as a per-option rate: the 1M-option QuantLib figure is measured
  on that subsample, not on the full million (the work per option does not
  depend on the chain size).

Accuracy: our implied vol against the true vol that generated each price,
and our greeks against QuantLib's, where vega (per unit of vol) > 1e-3.
The targets of the issue are checked at the end. This is not part of the
default test run (the file name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from alchemiser.domain.implied_vol import IvFlag, implied_vol
from alchemiser.domain.pricing import bsm_greeks, bsm_price

try:
    import QuantLib as ql
except ImportError:  # pragma: no cover - the bench extra is missing
    sys.exit(
        "QuantLib is not installed: .venv/bin/pip install -e '.[bench]' (or pip install QuantLib)"
    )

FloatArray = npt.NDArray[np.float64]
VEGA_FLOOR = 1e-3  # accuracy is judged where vega per unit of vol exceeds this
QL_ACCURACY = 1e-10  # QuantLib's solver tolerance on σ√T

# The targets.
TARGET_10K_MS = 5.0
TARGET_IV_RATE_100K = 2.5e6
TARGET_GREEKS_RATE_100K = 10e6
TARGET_IV_RATIO = 5.0
TARGET_GREEKS_RATIO = 50.0
TARGET_IV_ERROR = 1e-8
TARGET_GREEKS_REL_ERROR = 1e-10


@dataclass
class Chain:
    spot: FloatArray
    strike: FloatArray
    time: FloatArray
    rate: FloatArray
    div: FloatArray
    vol: FloatArray
    is_call: npt.NDArray[np.bool_]
    price: FloatArray


def make_chain(n: int, seed: int) -> Chain:
    """Listed-style chains: many underlyings, expiries 1 day-2 years, a skewed smile."""
    rng = np.random.default_rng(seed)
    spot = rng.uniform(20.0, 600.0, n)
    days = np.array([1, 2, 3, 7, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365, 540, 730])
    t = rng.choice(days, n) / 365.0
    rate = rng.uniform(0.0, 0.06, n)
    div = rng.uniform(0.0, 0.03, n)
    atm = rng.uniform(0.12, 0.6, n)
    z = rng.uniform(-4.0, 4.0, n)  # strike distance in ATM standard deviations
    k = z * atm * np.sqrt(t)
    vol = np.clip(atm * (1.0 - 0.08 * z + 0.015 * z * z), 0.05, 3.0)
    forward = spot * np.exp((rate - div) * t)
    strike = forward * np.exp(k)
    is_call = rng.random(n) < 0.5
    price = bsm_price(spot, strike, t, rate, div, vol, is_call)
    return Chain(spot, strike, t, rate, div, vol, is_call, price)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best, median) wall time in seconds over ``repeats`` runs after one warm-up."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs), statistics.median(runs)


def ql_inputs(c: Chain, m: int) -> list[tuple[int, float, float, float, float, float, float]]:
    """Per-option Python floats for QuantLib: (type, K, F, σ√T, D, S, T)."""
    forward = c.spot * np.exp((c.rate - c.div) * c.time)
    disc = np.exp(-c.rate * c.time)
    sd = c.vol * np.sqrt(c.time)
    kinds = np.where(c.is_call, ql.Option.Call, ql.Option.Put)
    return list(
        zip(
            kinds[:m].tolist(),
            c.strike[:m].tolist(),
            forward[:m].tolist(),
            sd[:m].tolist(),
            disc[:m].tolist(),
            c.spot[:m].tolist(),
            c.time[:m].tolist(),
            strict=True,
        )
    )


def ql_greeks(rows: list[tuple[int, float, float, float, float, float, float]]) -> FloatArray:
    out = np.empty((len(rows), 6))
    for i, (kind, k, f, sd, d, s, t) in enumerate(rows):
        calc = ql.BlackCalculator(ql.PlainVanillaPayoff(kind, k), f, sd, d)
        out[i] = (
            calc.value(),
            calc.delta(s),
            calc.gamma(s),
            calc.thetaPerDay(s, t),
            calc.vega(t),
            calc.rho(t),
        )
    return out


def ql_implied(
    rows: list[tuple[int, float, float, float, float, float, float]], prices: list[float]
) -> FloatArray:
    out = np.empty(len(rows))
    null = ql.nullDouble()
    for i, ((kind, k, f, _sd, d, _s, t), p) in enumerate(zip(rows, prices, strict=True)):
        try:
            sd = ql.blackFormulaImpliedStdDev(kind, k, f, p, d, 0.0, null, QL_ACCURACY, 100)
            out[i] = sd / math.sqrt(t)
        except RuntimeError:
            out[i] = math.nan
    return out


def exact_greeks(
    rows: list[tuple[int, float, float, float, float, float, float]],
) -> tuple[FloatArray, FloatArray]:
    """Closed forms per option with math.erfc (accurate in the tails), QuantLib's units.

    Returns the six outputs and, for theta, the size of its largest term: theta
    is a sum of terms that can nearly cancel, so its error is judged against that.
    """
    out = np.empty((len(rows), 6))
    theta_scale = np.empty(len(rows))
    root2 = math.sqrt(2.0)
    for i, (kind, k, f, sd, d, s, t) in enumerate(rows):
        w = 1.0 if kind == ql.Option.Call else -1.0
        d1 = math.log(f / k) / sd + 0.5 * sd
        d2 = d1 - sd
        n1 = 0.5 * math.erfc(-w * d1 / root2)
        n2 = 0.5 * math.erfc(-w * d2 / root2)
        pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
        r = -math.log(d) / t
        dq = f * d / s
        q = -math.log(dq) / t
        terms = (-s * dq * pdf * sd / (2.0 * t), -w * r * k * d * n2, w * q * s * dq * n1)
        out[i] = (
            w * d * (f * n1 - k * n2),
            w * dq * n1,
            dq * pdf / (s * sd),
            math.fsum(terms) / 365.0,
            s * dq * pdf * math.sqrt(t),
            w * k * t * d * n2,
        )
        theta_scale[i] = max(abs(x) for x in terms) / 365.0
    return out, theta_scale


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:9.3f}M"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--ql-sample", type=int, default=20000, help="options timed in QuantLib")
    parser.add_argument("--ql-repeats", type=int, default=3, help="timed QuantLib loops")
    parser.add_argument("--seed", type=int, default=20260501)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    print(
        f"python {platform.python_version()}  numpy {np.__version__}  scipy {scipy.__version__}"
        f"  QuantLib {ql.__version__}  cpus {os.cpu_count()}"
        f"  load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"times: best of {args.repeats} runs (median in brackets); QuantLib: best of "
        f"{args.ql_repeats} Python loops over the first {args.ql_sample} options of each "
        "chain, as a per-option rate\n"
    )
    header = (
        f"{'size':>9} {'task':<14} {'ours opt/s':>11} {'(median)':>11} "
        f"{'QuantLib opt/s':>15} {'ratio':>8} {'ours ms':>9}"
    )
    print(header)
    print("-" * len(header))

    checks: list[tuple[str, bool, str]] = []
    iv_errors: list[float] = []
    greek_errors: dict[str, float] = {}
    greek_over: dict[str, int] = {}
    exact_errors: dict[str, float] = {}
    ql_exact_errors: dict[str, float] = {}
    judged_count = 0
    ql_iv_errors: list[float] = []
    ql_price_iv_errors: list[float] = []
    flags_seen: dict[str, int] = {}

    for n in sizes:
        c = make_chain(n, args.seed + n)
        reps = max(2, args.repeats if n <= 200_000 else args.repeats // 2)
        m = min(n, args.ql_sample)

        g_best, g_med = timed(
            lambda c=c: bsm_greeks(c.spot, c.strike, c.time, c.rate, c.div, c.vol, c.is_call),
            reps,
        )
        iv_best, iv_med = timed(
            lambda c=c: implied_vol(c.price, c.spot, c.strike, c.time, c.rate, c.div, c.is_call),
            reps,
        )

        def both(c: Chain = c) -> None:
            iv = implied_vol(c.price, c.spot, c.strike, c.time, c.rate, c.div, c.is_call)
            bsm_greeks(c.spot, c.strike, c.time, c.rate, c.div, iv.vol, c.is_call)

        both_best, both_med = timed(both, reps)

        rows = ql_inputs(c, m)
        prices = c.price[:m].tolist()
        ql_g = ql_greeks(rows)
        ql_iv = ql_implied(rows, prices)
        # Per-option seconds, best of a few loops like ours (the machine may be shared).
        ql_g_time = timed(lambda rows=rows: ql_greeks(rows), args.ql_repeats)[0] / m
        ql_iv_time = (
            timed(lambda rows=rows, prices=prices: ql_implied(rows, prices), args.ql_repeats)[0] / m
        )

        g_ratio = (n / g_best) * ql_g_time
        iv_ratio = (n / iv_best) * ql_iv_time
        sample = "" if m == n else f" (on {m})"
        print(
            f"{n:>9,} {'price+greeks':<14} {rate(n, g_best):>11} {rate(n, g_med):>11} "
            f"{1.0 / ql_g_time:>15,.0f} {g_ratio:>7.0f}x {g_best * 1e3:>9.2f}{sample}"
        )
        print(
            f"{n:>9,} {'implied vol':<14} {rate(n, iv_best):>11} {rate(n, iv_med):>11} "
            f"{1.0 / ql_iv_time:>15,.0f} {iv_ratio:>7.1f}x {iv_best * 1e3:>9.2f}{sample}"
        )
        print(
            f"{n:>9,} {'IV then greeks':<14} {rate(n, both_best):>11} {rate(n, both_med):>11} "
            f"{'':>15} {'':>8} {both_best * 1e3:>9.2f}"
        )

        # Accuracy ------------------------------------------------------------
        ours_iv = implied_vol(c.price, c.spot, c.strike, c.time, c.rate, c.div, c.is_call)
        ours_g = bsm_greeks(c.spot, c.strike, c.time, c.rate, c.div, c.vol, c.is_call)
        vega_unit = ours_g.vega * 100.0
        judged = vega_unit > VEGA_FLOOR
        iv_errors.append(float(np.nanmax(np.abs(ours_iv.vol - c.vol)[judged])))
        if np.isnan(ours_iv.vol[judged]).any():
            iv_errors.append(math.inf)
        for f in IvFlag:
            count = int(np.count_nonzero(ours_iv.flag == f))
            if count:
                flags_seen[f.name] = flags_seen.get(f.name, 0) + count
        sub = judged[:m]
        ours_cols = {
            "price": ours_g.price[:m],
            "delta": ours_g.delta[:m],
            "gamma": ours_g.gamma[:m],
            "theta": ours_g.theta[:m],
            "vega": ours_g.vega[:m] * 100.0,  # QuantLib: per unit of vol
            "rho": ours_g.rho[:m] * 100.0,  # QuantLib: per unit of rate
        }
        exact, theta_scale = exact_greeks(rows)
        for j, (name, col) in enumerate(ours_cols.items()):
            ref = ql_g[:, j]
            rel = np.abs(col - ref)[sub] / np.abs(ref)[sub]
            greek_errors[name] = max(greek_errors.get(name, 0.0), float(np.max(rel, initial=0.0)))
            over = int(np.count_nonzero(rel > TARGET_GREEKS_REL_ERROR))
            greek_over[name] = greek_over.get(name, 0) + over
            scale = theta_scale if name == "theta" else np.abs(exact[:, j])
            ours_ex = np.abs(col - exact[:, j])[sub] / scale[sub]
            ql_ex = np.abs(ref - exact[:, j])[sub] / scale[sub]
            exact_errors[name] = max(
                exact_errors.get(name, 0.0), float(np.max(ours_ex, initial=0.0))
            )
            ql_exact_errors[name] = max(
                ql_exact_errors.get(name, 0.0), float(np.max(ql_ex, initial=0.0))
            )
            judged_count += int(np.count_nonzero(sub)) if j == 0 else 0
        ql_iv_errors.append(float(np.nanmax(np.abs(ql_iv - c.vol[:m])[sub])))
        # Prices from QuantLib's own formula, inverted by ours: no shared code with the truth.
        ql_prices = ql_g[:, 0]
        ours_from_ql = implied_vol(
            ql_prices, c.spot[:m], c.strike[:m], c.time[:m], c.rate[:m], c.div[:m], c.is_call[:m]
        )
        ql_price_iv_errors.append(float(np.nanmax(np.abs(ours_from_ql.vol - c.vol[:m])[sub])))

        if n == 10_000:
            checks.append(
                (
                    f"10k chain: IV + 5 greeks < {TARGET_10K_MS:g} ms",
                    both_best * 1e3 < TARGET_10K_MS,
                    f"{both_best * 1e3:.2f} ms (median {both_med * 1e3:.2f})",
                )
            )
        if n == 100_000:
            checks.append(
                (
                    "100k: IV >= 2.5M options/s",
                    n / iv_best >= TARGET_IV_RATE_100K,
                    f"{n / iv_best / 1e6:.2f}M/s (median {n / iv_med / 1e6:.2f}M/s)",
                )
            )
            checks.append(
                (
                    "100k: price+greeks >= 10M options/s",
                    n / g_best >= TARGET_GREEKS_RATE_100K,
                    f"{n / g_best / 1e6:.2f}M/s (median {n / g_med / 1e6:.2f}M/s)",
                )
            )
        checks.append(
            (
                f"{n:,}: IV >= {TARGET_IV_RATIO:g}x QuantLib",
                iv_ratio >= TARGET_IV_RATIO,
                f"{iv_ratio:.1f}x",
            )
        )
        checks.append(
            (
                f"{n:,}: greeks >= {TARGET_GREEKS_RATIO:g}x QuantLib",
                g_ratio >= TARGET_GREEKS_RATIO,
                f"{g_ratio:.0f}x",
            )
        )

    iv_err = max(iv_errors)
    print(f"\naccuracy where vega > {VEGA_FLOOR:g} (per unit of vol):")
    print(f"  ours IV   - true vol, max abs error  : {iv_err:.2e}  (all {sum(sizes):,} options)")
    print(
        f"  ours IV from QuantLib prices - true  : {max(ql_price_iv_errors):.2e}  (QuantLib sample)"
    )
    print(
        f"  QuantLib IV - true vol (tol {QL_ACCURACY:g}): {max(ql_iv_errors):.2e}"
        "  (QuantLib sample)"
    )
    print(
        f"  greeks on {judged_count:,} QuantLib-sample options; 'exact' = closed forms with "
        "math.erfc\n  (theta: error over its largest term, as its terms can cancel)"
    )
    print(
        f"  {'greek':<6} {'ours vs QL':>11} {'# > 1e-10':>10} {'ours vs exact':>14} "
        f"{'QL vs exact':>12}"
    )
    for name, err in greek_errors.items():
        print(
            f"  {name:<6} {err:>11.2e} {greek_over[name]:>10} {exact_errors[name]:>14.2e} "
            f"{ql_exact_errors[name]:>12.2e}"
        )
    print(f"  IV flags over all chains: {flags_seen}")
    greek_err = max(greek_errors.values())
    exact_err = max(exact_errors.values())
    checks.append(
        (
            f"IV within {TARGET_IV_ERROR:g} of the true vol",
            iv_err < TARGET_IV_ERROR,
            f"{iv_err:.1e}",
        )
    )
    ql_limited = greek_err >= TARGET_GREEKS_REL_ERROR and exact_err < TARGET_GREEKS_REL_ERROR
    checks.append(
        (
            f"greeks within {TARGET_GREEKS_REL_ERROR:g} relative of exact",
            exact_err < TARGET_GREEKS_REL_ERROR,
            f"{exact_err:.1e}",
        )
    )

    print("\ntargets:")
    for label, ok, detail in checks:
        print(f"  [{'MET' if ok else 'NOT MET':>7}] {label:<42} {detail}")
    # Reported, not counted in the exit status when QuantLib is the side that is off:
    # its normal CDF is (1 + erf(x/√2))/2 until the result drops below 1e-8, which
    # loses relative accuracy in the tail (out-of-the-money prices), and a theta
    # near zero is a difference of larger terms in both libraries.
    mark = "MET" if greek_err < TARGET_GREEKS_REL_ERROR else "NOT MET"
    print(
        f"  [{mark:>7}] {'greeks within ' + format(TARGET_GREEKS_REL_ERROR, 'g') + ' relative of QuantLib':<42} "
        f"{greek_err:.1e}; QuantLib vs exact: {max(ql_exact_errors.values()):.1e}"
        + (" (QuantLib-limited, see the table above)" if ql_limited else "")
    )
    failed = not all(ok for _, ok, _ in checks) or not (
        greek_err < TARGET_GREEKS_REL_ERROR or ql_limited
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
