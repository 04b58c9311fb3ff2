"""The seeded, deterministic synthetic market (underlyings, vol index, option chains).

``SimMarket`` is the facade the simulated broker and backtests use; the
modules behind it are the universe (``universe``), the price and vol paths
(``paths``), the implied-vol surfaces (``surface``) and the listing rules
(``listing``). Pure code: no I/O, no clock reads, no logging.
"""

from alchemiser.sim.listing import Expiry, ExpiryType, ListingParams
from alchemiser.sim.market import ChainArrays, QuoteParams, SimMarket, SimParams, UnknownSymbolError
from alchemiser.sim.paths import CrashEvent, PathParams
from alchemiser.sim.surface import SurfaceParams
from alchemiser.sim.universe import (
    CORE_ETFS,
    DEFAULT_STOCKS,
    Instrument,
    InstrumentKind,
    StrikeGridStyle,
    default_universe,
    stock,
    universe_with,
)

__all__ = [
    "CORE_ETFS",
    "DEFAULT_STOCKS",
    "ChainArrays",
    "CrashEvent",
    "Expiry",
    "ExpiryType",
    "Instrument",
    "InstrumentKind",
    "ListingParams",
    "PathParams",
    "QuoteParams",
    "SimMarket",
    "SimParams",
    "StrikeGridStyle",
    "SurfaceParams",
    "UnknownSymbolError",
    "default_universe",
    "stock",
    "universe_with",
]
