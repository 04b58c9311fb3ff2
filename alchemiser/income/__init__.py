"""Income strategy decisions as pure functions: candidates, screens, scores and exits.

No I/O, no clock reads, no database, no broker: the income services gather
chains, reference data, holdings and the time, and call these.
"""
