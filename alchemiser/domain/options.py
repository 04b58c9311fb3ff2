"""Listed option contracts and their OCC (OSI) symbols.

An OCC symbol is the root (1-6 characters), the expiry as YYMMDD, the right
(``C`` or ``P``) and the strike times 1000 in 8 digits:
``QQQ260417P00450000`` is the QQQ 450 put expiring 2026-04-17. The official
21-character form pads the root with spaces to 6 characters
(``QQQ   260417P00450000``); both forms parse, the compact one is produced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

__all__ = [
    "MAX_STRIKE",
    "OccSymbolError",
    "OptionContract",
    "OptionRight",
    "format_occ",
    "parse_occ",
]

# Eight digits of strike × 1000: the largest strike an OCC symbol can carry.
MAX_STRIKE = Decimal("99999.999")

# Root: letters and digits (adjusted roots such as "SPY1" carry a digit).
_ROOT_RE = re.compile(r"[A-Z0-9]{1,6}")
_OCC_RE = re.compile(r"(?P<root>[A-Z0-9]{1,6}) *(?P<date>\d{6})(?P<right>[CP])(?P<strike>\d{8})")


class OccSymbolError(ValueError):
    """An OCC option symbol (or the parts of one) that cannot be valid."""


class OptionRight(StrEnum):
    """Call or put; the value is the OCC letter."""

    CALL = "C"
    PUT = "P"

    @property
    def is_call(self) -> bool:
        return self is OptionRight.CALL

    @classmethod
    def parse(cls, text: str) -> OptionRight:
        """Read ``C``/``P`` or ``call``/``put`` in any case."""
        key = text.strip().upper()
        if key in ("C", "CALL"):
            return cls.CALL
        if key in ("P", "PUT"):
            return cls.PUT
        raise ValueError(f"option right must be C or P (or CALL/PUT), got {text!r}")


@dataclass(frozen=True, slots=True)
class OptionContract:
    """One listed option series; the strike is money, so it is a Decimal."""

    root: str
    expiry: date
    right: OptionRight
    strike: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.root, str) or not _ROOT_RE.fullmatch(self.root):
            raise OccSymbolError(
                f"option root must be 1-6 upper-case letters or digits, got {self.root!r}"
            )
        if not isinstance(self.right, OptionRight):
            raise OccSymbolError(f"option right must be an OptionRight, got {self.right!r}")
        if not isinstance(self.strike, Decimal) or not self.strike.is_finite():
            raise OccSymbolError(f"strike must be a finite Decimal, got {self.strike!r}")
        if self.strike <= 0:
            raise OccSymbolError(f"strike must be positive, got {self.strike}")
        if not 2000 <= self.expiry.year <= 2099:
            # YYMMDD cannot say which century; OCC symbols in use are all 20YY.
            raise OccSymbolError(f"expiry year must be 2000-2099, got {self.expiry.year}")

    @property
    def occ_symbol(self) -> str:
        return format_occ(self)

    @classmethod
    def from_occ(cls, symbol: str) -> OptionContract:
        return parse_occ(symbol)

    def __str__(self) -> str:
        return self.occ_symbol


def parse_occ(symbol: str) -> OptionContract:
    """Parse a compact or space-padded OCC symbol; raise OccSymbolError if malformed."""
    if not isinstance(symbol, str):
        raise OccSymbolError(f"OCC symbol must be a string, got {type(symbol).__name__}")
    text = symbol.strip().upper()
    match = _OCC_RE.fullmatch(text)
    if match is None:
        raise OccSymbolError(
            f"malformed OCC symbol {symbol!r}: expected ROOT (1-6 letters/digits), "
            "YYMMDD, C or P, and the strike × 1000 in 8 digits, e.g. QQQ260417P00450000"
        )
    digits = match["date"]
    try:
        expiry = date(2000 + int(digits[:2]), int(digits[2:4]), int(digits[4:]))
    except ValueError as exc:
        raise OccSymbolError(
            f"malformed OCC symbol {symbol!r}: bad expiry {digits}: {exc}"
        ) from None
    strike = Decimal(int(match["strike"])) / 1000
    if strike == 0:
        raise OccSymbolError(f"malformed OCC symbol {symbol!r}: strike is zero")
    return OptionContract(
        root=match["root"], expiry=expiry, right=OptionRight(match["right"]), strike=strike
    )


def format_occ(contract: OptionContract) -> str:
    """The compact OCC symbol; raise OccSymbolError if the strike cannot be encoded."""
    strike = contract.strike
    try:
        scaled = strike * 1000
        exact = scaled == scaled.to_integral_value()
    except InvalidOperation:
        exact = False
    if not exact:
        raise OccSymbolError(
            f"strike {strike} has more than 3 decimals; OCC symbols carry strike × 1000"
        )
    if strike > MAX_STRIKE:
        raise OccSymbolError(f"strike {strike} exceeds the OCC maximum {MAX_STRIKE}")
    return f"{contract.root}{contract.expiry:%y%m%d}{contract.right.value}{int(strike * 1000):08d}"
