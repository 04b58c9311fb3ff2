"""Synthetic markets shared by the hedging tests (their caches are worth sharing)."""

from __future__ import annotations

from datetime import date

import pytest

from alchemiser.sim import SimMarket

# Seeds and days picked from the synthetic market (see test_selection's realistic tests).
CALM_SEED = 20240611  # 2020-01-02: index ~12 (low tier)
RICH_SEED = 2  # 2020-11-17 15:30: index just above 35; 2020-11-18: ~39
CRASH_SEED = 1  # 2020-03-03: index ~39


@pytest.fixture(scope="package")
def calm_market() -> SimMarket:
    return SimMarket(seed=CALM_SEED, start=date(2020, 1, 2))


@pytest.fixture(scope="package")
def rich_market() -> SimMarket:
    return SimMarket(seed=RICH_SEED, start=date(2020, 1, 2))


@pytest.fixture(scope="package")
def crash_market() -> SimMarket:
    return SimMarket(seed=CRASH_SEED, start=date(2020, 1, 2))
