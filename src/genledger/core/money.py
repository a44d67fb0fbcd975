"""Exact money.

Every amount inside genledger is an integer number of picodollars (1e-12 USD). Prices are
quoted in USD per million tokens, so a price with up to six decimals is a whole number of
picodollars per token and every cost is an exact integer. Floats appear only at the JSON
edge, through :func:`to_usd`.
"""

from __future__ import annotations

import functools
from decimal import Decimal

PICO_PER_USD = 10**12
_TOKENS_PER_PRICE_UNIT = 10**6  # prices are per million tokens
# Bounds that keep every amount within a 64-bit column: a cost is at most
# MAX_OUTPUT_TOKENS-ish tokens at MAX_PRICE, far below 2**63 picodollars.
MAX_PRICE_PER_MILLION = Decimal(10_000)
MAX_LIMIT_USD = Decimal(1_000_000)


class PriceError(ValueError):
    """A price that cannot be represented exactly."""


@functools.lru_cache(maxsize=1024)  # a catalog has few prices; every request prices its usage
def per_token_pico(price_per_million: Decimal) -> int:
    """Picodollars per token for a price in USD per million tokens.

    Raises :class:`PriceError` for a negative price or one with more than six decimals
    (it would not be a whole number of picodollars per token).
    """
    if price_per_million < 0:
        raise PriceError(f"price must not be negative, got {price_per_million:f}")
    if price_per_million > MAX_PRICE_PER_MILLION:
        raise PriceError(f"price must be at most {MAX_PRICE_PER_MILLION} USD per million tokens")
    pico = price_per_million * PICO_PER_USD / _TOKENS_PER_PRICE_UNIT
    if pico != pico.to_integral_value():
        raise PriceError(f"price {price_per_million:f} has more than 6 decimals")
    return int(pico)


def usd_to_pico(usd: Decimal) -> int:
    """Convert an exact USD amount (at most 12 decimals) to picodollars."""
    pico = usd * PICO_PER_USD
    if pico != pico.to_integral_value():
        raise PriceError(f"amount {usd:f} has more than 12 decimals")
    return int(pico)


def to_decimal(pico: int) -> Decimal:
    """The exact USD value of a picodollar amount."""
    return Decimal(pico).scaleb(-12)


_EXACT_IN_FLOAT = 2**53  # integers below this are exact binary64 values


def to_usd(pico: int) -> float:
    """The USD value of a picodollar amount as a float, for JSON only: the nearest float.

    Below 2**53 picodollars (about $9,007) the amount and 10**12 are exact floats, so one
    IEEE division is correctly rounded: the same float as the exact Decimal's, several
    times faster (every answer and every listed record shows several amounts).
    """
    if -_EXACT_IN_FLOAT < pico < _EXACT_IN_FLOAT:
        return pico / 1e12
    return float(to_decimal(pico))


def limit_to_pico(usd: Decimal) -> int:
    """A key's spending limit in picodollars: non-negative, at most ``MAX_LIMIT_USD``, exact."""
    if not usd.is_finite() or usd < 0 or usd > MAX_LIMIT_USD:
        raise PriceError(f"a limit must be between 0 and {MAX_LIMIT_USD} USD")
    return usd_to_pico(usd)


def from_usd(usd: float | str) -> int:
    """A USD amount from JSON (a float, or its text) as the nearest picodollars: the inverse of
    :func:`to_usd` for every amount it renders."""
    return int((Decimal(str(usd)) * PICO_PER_USD).to_integral_value())
