"""The shipped config/alchemiser.toml: complete, commented, and equal to the model defaults.

These tests fail on drift: a setting added to a model but not to the file, a
default changed in one place only, or a key written without a comment.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from alchemiser.settings import Settings, load_settings
from alchemiser.settings.live import RESTART_ONLY_KEYS
from alchemiser.settings.loader import FILE_FORBIDDEN
from alchemiser.settings.view import flatten, render_toml

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "alchemiser.toml"
# Secrets the file may never hold (the loader refuses them): the only keys it may leave out.
SECRET_KEYS = {f"{section}.{key}" for section, key in FILE_FORBIDDEN}

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_\-]+)\s*=')


@pytest.fixture
def defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings from the models alone: no file in the working directory, no environment."""
    monkeypatch.chdir(tmp_path)
    loaded = load_settings(None, env={})
    assert loaded.path is None, "a config file was found where none should be"
    return loaded.settings


@pytest.fixture
def model_keys(defaults: Settings) -> set[str]:
    return set(flatten(defaults))


def _file_keys(values: Mapping[str, Any], model_keys: set[str], prefix: str = "") -> set[str]:
    """Dotted keys set by the file; a map or list setting (e.g. sector_etfs) counts as one key."""
    keys: set[str] = set()
    for name, value in values.items():
        dotted = f"{prefix}{name}"
        if dotted in model_keys or not isinstance(value, Mapping):
            keys.add(dotted)
        else:
            keys |= _file_keys(value, model_keys, dotted + ".")
    return keys


def test_shipped_file_loads_to_exactly_the_defaults(defaults: Settings) -> None:
    shipped = load_settings(SHIPPED, env={})
    assert shipped.path == SHIPPED
    got = flatten(shipped.settings, show_secrets=True)
    want = flatten(defaults, show_secrets=True)
    differing = {
        k: (got.get(k), want.get(k)) for k in got.keys() | want.keys() if got.get(k) != want.get(k)
    }
    assert not differing, f"file value != model default (file, default): {differing}"


def test_shipped_file_warns_only_as_the_defaults_do(defaults: Settings) -> None:
    # The monthly x 12 warning is intended by PARAMETERS.md; nothing beyond the defaults' own.
    shipped = load_settings(SHIPPED, env={})
    assert shipped.warnings
    assert any("monthly cap × 12 (4.2 %)" in w for w in shipped.warnings)
    assert shipped.warnings == load_settings(None, env={}).warnings


def test_every_setting_is_in_the_file(model_keys: set[str]) -> None:
    values = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    in_file = _file_keys(values, model_keys)
    missing = sorted(model_keys - SECRET_KEYS - in_file)
    unknown = sorted(in_file - model_keys)
    assert not missing, f"settings missing from {SHIPPED.name}: {missing}"
    assert not unknown, f"keys in {SHIPPED.name} that no model has: {unknown}"
    assert not (in_file & SECRET_KEYS), "secrets must never be in the shipped file"


def test_every_setting_line_has_a_comment(model_keys: set[str]) -> None:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    table = ""
    uncommented: list[str] = []
    checked = 0

    def commented(index: int) -> bool:
        line = lines[index]
        # A '#' after the value (no value in the file contains '#'), or a comment line just above.
        return "#" in line or (index > 0 and lines[index - 1].lstrip().startswith("#"))

    for index, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        header = _HEADER.match(line)
        if header:
            table = header.group(1).replace(" ", "")
            # A table that is itself one setting (a map or a list of tables) needs its comment.
            if table in model_keys:
                checked += 1
                if not commented(index):
                    uncommented.append(f"line {index + 1}: {line.strip()}")
            continue
        key = _KEY_LINE.match(line)
        assert key, f"line {index + 1} is neither a table, a key nor a comment: {line!r}"
        dotted = f"{table}.{key.group(1).strip(chr(34))}" if table else key.group(1)
        if table in model_keys:
            continue  # an entry of a map or list setting, documented at its table
        assert dotted in model_keys, f"line {index + 1}: {dotted} is not a setting"
        checked += 1
        if not commented(index):
            uncommented.append(f"line {index + 1}: {line.strip()}")
    assert not uncommented, "keys without a comment:\n" + "\n".join(uncommented)
    assert checked >= len(model_keys - SECRET_KEYS)


def test_header_explains_precedence_errors_and_restart_only_keys() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    header = text.split("\nmode =", 1)[0]
    for phrase in ("ALCHEMISER__", "ALPACA__KEY", "DATABASE_URL", "Unknown keys are errors"):
        assert phrase in header
    listed = set(re.findall(r"[a-z_]+(?:\.[a-z_]+)?", header.split("next restart", 1)[1]))
    missing = [key for key in RESTART_ONLY_KEYS if key not in listed]
    assert not missing, f"restart-only keys not named in the header: {missing}"


def test_the_drift_checks_catch_a_changed_value(tmp_path: Path, defaults: Settings) -> None:
    # Guard against a vacuous comparison: one edited value must make the flattened views differ.
    edited = SHIPPED.read_text(encoding="utf-8").replace("monthly_pct = 0.35", "monthly_pct = 0.30")
    path = tmp_path / "edited.toml"
    path.write_text(edited, encoding="utf-8")
    got = flatten(load_settings(path, env={}).settings)
    want = flatten(defaults)
    assert got["hedging.caps.monthly_pct"] == Decimal("0.30")
    assert {k for k in got if got[k] != want[k]} == {"hedging.caps.monthly_pct"}


def test_config_show_output_loads_back_to_the_same_settings(
    tmp_path: Path, defaults: Settings
) -> None:
    # Secrets are left out: the loader refuses them in a file (they come from the environment).
    shown = [
        line
        for line in render_toml(defaults).splitlines()
        if line.split(" = ", 1)[0] not in {key for _, key in FILE_FORBIDDEN}
    ]
    path = tmp_path / "shown.toml"
    path.write_text("\n".join(shown), encoding="utf-8")
    assert flatten(load_settings(path, env={}).settings) == flatten(defaults)
