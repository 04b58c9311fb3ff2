"""alchemiser: tail hedges and option income for a leveraged US equity book."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alchemiser")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
