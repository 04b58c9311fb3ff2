"""Pure domain logic: no I/O, no clock reads, no database, no network."""
