"""Market data: quotes, option chains, volatility index inputs, history files."""
