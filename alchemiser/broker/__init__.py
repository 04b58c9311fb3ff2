"""Brokers: the protocol every strategy uses, and its adapters (sim, Alpaca)."""
