"""Shared synthetic markets: building one is cheap, but their caches are worth sharing."""

from __future__ import annotations

from datetime import date

import pytest

from alchemiser.sim import SimMarket
from tests.sim.util import SEED, START


@pytest.fixture(scope="package")
def market() -> SimMarket:
    return SimMarket(seed=SEED, start=START)


@pytest.fixture(scope="package")
def long_run() -> SimMarket:
    """A market run for 30 years from 1994 (the path is generated on first use)."""
    return SimMarket(seed=7, start=date(1994, 1, 3))
