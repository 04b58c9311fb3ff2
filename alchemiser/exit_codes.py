"""Process exit codes: fixed, documented in the README, relied on by scripts and systemd."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    CONFIG = 3
    DATABASE = 4
    ALREADY_RUNNING = 5
