"""Simulation scenarios: the opening book and broker behaviour of a simulated account.

A scenario is a TOML file (``config/sim_scenario.toml`` is the default) read
into a typed :class:`SimScenario`. It seeds the account on the daemon's first
start only; afterwards the database holds the book and the scenario's
``[account]`` part is ignored (its ``[broker]`` part still configures fees,
matching and assignment).

Errors name the file and the dotted path of each bad field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alchemiser.broker.sim import SimBrokerConfig
from alchemiser.broker.sim_rules import STOCK_INITIAL_MARGIN

__all__ = [
    "DEFAULT_SCENARIO_NAME",
    "BookSpec",
    "ScenarioError",
    "SimScenario",
    "default_scenario_path",
    "load_scenario",
]

DEFAULT_SCENARIO_NAME = "sim_scenario.toml"
# Reg T lets a new position use at most 1 / initial margin of equity in stock.
MAX_GROSS_EXPOSURE = 1 / STOCK_INITIAL_MARGIN


class ScenarioError(ValueError):
    """A scenario file that cannot be used; every problem names its field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountSpec(_Section):
    # Net liquidation value the account opens with, US dollars.
    nav: Decimal = Field(default=Decimal(150_000), gt=0)
    # Alpaca options approval level: 1 covered calls/CSPs, 2 + long options, 3 + spreads.
    options_level: int = Field(default=3, ge=0, le=3)


class BookSpec(_Section):
    # Long stock market value / NAV at the start (gross exposure); the rest is a margin loan.
    gross_exposure: Decimal = Field(default=Decimal("1.95"), ge=0)
    # Relative weights of the stocks in the book (normalised to sum to 1).
    weights: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("gross_exposure")
    @classmethod
    def _within_reg_t(cls, value: Decimal) -> Decimal:
        if value > MAX_GROSS_EXPOSURE:
            raise ValueError(
                f"{value}x exceeds the {MAX_GROSS_EXPOSURE}x Reg-T allows at entry "
                f"({STOCK_INITIAL_MARGIN:.0%} initial margin)"
            )
        return value

    @field_validator("weights")
    @classmethod
    def _positive_weights(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [f"{k}={v}" for k, v in value.items() if v <= 0]
        if bad:
            raise ValueError(f"weights must be positive, got {', '.join(bad)}")
        return value


class BrokerSpec(_Section):
    fee_per_contract: Decimal = Field(default=Decimal(0), ge=0)
    early_assignment_probability: float = Field(default=0.05, ge=0, le=1)
    early_assignment_max_time_value: Decimal = Field(default=Decimal("0.05"), ge=0)
    match_interval_seconds: float = Field(default=60.0, ge=1, le=3600)
    random_seed: int = 0


class _ScenarioModel(_Section):
    name: str = Field(default="default", min_length=1, max_length=128)
    description: str = ""
    account: AccountSpec = Field(default_factory=AccountSpec)
    book: BookSpec = Field(default_factory=BookSpec)
    broker: BrokerSpec = Field(default_factory=BrokerSpec)


@dataclass(frozen=True)
class SimScenario:
    """A loaded scenario: what the account opens with and how the broker behaves."""

    name: str
    description: str
    account: AccountSpec
    book: BookSpec
    broker: BrokerSpec
    source: str = "<scenario>"

    def broker_config(self, account_id: str = "sim") -> SimBrokerConfig:
        b = self.broker
        return SimBrokerConfig(
            account_id=account_id,
            options_level=self.account.options_level,
            fee_per_contract=b.fee_per_contract,
            early_assignment_probability=b.early_assignment_probability,
            early_assignment_max_time_value=b.early_assignment_max_time_value,
            match_interval_seconds=b.match_interval_seconds,
            random_seed=b.random_seed,
        )

    def opening_book(self, prices: Mapping[str, Decimal]) -> tuple[Decimal, dict[str, Decimal]]:
        """Cash and whole shares per stock for this NAV and exposure at ``prices``.

        Each stock gets ``weight / Σ weights × gross_exposure × NAV`` of market
        value, rounded down to whole shares; cash is what is left of the NAV
        (negative: the margin loan).
        """
        nav = self.account.nav
        total = sum(self.book.weights.values(), Decimal(0))
        shares: dict[str, Decimal] = {}
        invested = Decimal(0)
        for symbol, weight in self.book.weights.items():
            price = prices[symbol]
            if price <= 0:
                raise ScenarioError(self.source, [f"book.weights.{symbol}: no price to buy at"])
            target = nav * self.book.gross_exposure * weight / total
            qty = (target / price).to_integral_value(rounding=ROUND_FLOOR)
            shares[symbol] = qty
            invested += qty * price
        return nav - invested, shares


def default_scenario_path() -> Path:
    """``config/sim_scenario.toml`` in a checkout, or the copy shipped in the wheel."""
    import alchemiser

    package = Path(alchemiser.__file__).resolve().parent
    for candidate in (package / "_config", package.parent / "config"):
        path = candidate / DEFAULT_SCENARIO_NAME
        if path.exists():
            return path
    return package.parent / "config" / DEFAULT_SCENARIO_NAME


def load_scenario(path: Path | str | None = None) -> SimScenario:
    """Read and validate a scenario file (default: the shipped one)."""
    file = Path(path) if path is not None else default_scenario_path()
    source = str(file)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh, parse_float=Decimal)
    except FileNotFoundError:
        raise ScenarioError(source, ["scenario file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [f"not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ScenarioError(source, [f"cannot read: {exc.strerror}"]) from None
    return parse_scenario(data, source)


def parse_scenario(data: Mapping[str, Any], source: str = "<scenario>") -> SimScenario:
    """Validate scenario data (as read from TOML)."""
    try:
        model = _ScenarioModel.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field (check the spelling against config/sim_scenario.toml)"
            problems.append(f"{loc}: {message}")
        raise ScenarioError(source, problems) from None
    if not model.book.weights and model.book.gross_exposure > 0:
        raise ScenarioError(
            source, ["book.weights: a book with gross_exposure > 0 needs at least one stock"]
        )
    return SimScenario(
        name=model.name,
        description=model.description,
        account=model.account,
        book=model.book,
        broker=model.broker,
        source=source,
    )
