"""Flat, redacted views of settings: for `config show`, reload diffs and logs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

REDACTED = "**********"


def redact_url(url: str) -> str:
    """A URL with its password replaced, so where it points stays readable."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{netloc[-1]}"))


def flatten(model: BaseModel, show_secrets: bool = False, prefix: str = "") -> dict[str, Any]:
    """``{"hedging.caps.monthly_pct": Decimal("0.35"), ...}``; secrets redacted unless asked."""
    flat: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            flat.update(flatten(value, show_secrets, key + "."))
        elif isinstance(value, SecretStr):
            raw = value.get_secret_value()
            if show_secrets:
                flat[key] = raw
            elif "://" in raw:
                flat[key] = redact_url(raw)
            else:
                flat[key] = REDACTED
        else:
            flat[key] = value
    return flat


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    def as_text(self) -> str:
        return f"{self.key}: {render_value(self.old)} -> {render_value(self.new)}"


def diff(old: BaseModel, new: BaseModel) -> list[Change]:
    """Changed keys, secrets redacted (a changed secret shows as changed, not its value)."""
    before, after = flatten(old), flatten(new)
    raw_before, raw_after = flatten(old, True), flatten(new, True)
    changes = []
    for key in sorted(raw_before.keys() | raw_after.keys()):
        if raw_before.get(key) != raw_after.get(key):
            old_v, new_v = before.get(key), after.get(key)
            if old_v == new_v:  # a secret changed behind the redaction
                old_v, new_v = f"{REDACTED} (old)", f"{REDACTED} (new)"
            changes.append(Change(key, old_v, new_v))
    return changes


def render_value(value: Any) -> str:
    """A value as it would be written in the TOML file."""
    if value is None:
        return '""  # not set'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {render_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def render_toml(model: BaseModel, show_secrets: bool = False) -> str:
    """The effective settings as TOML text (what `config show` prints)."""
    # Group by table, in order of first appearance: a table header may appear only once.
    tables: dict[str, list[str]] = {}
    for key, value in flatten(model, show_secrets).items():
        section, _, leaf = key.rpartition(".")
        tables.setdefault(section, []).append(f"{leaf} = {render_value(value)}")
    lines: list[str] = list(tables.pop("", []))
    for section, entries in tables.items():
        lines.append(f"\n[{section}]")
        lines.extend(entries)
    return "\n".join(lines).lstrip("\n") + "\n"
