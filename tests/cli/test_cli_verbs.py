"""The CLI verbs end to end through click's CliRunner, on real SQLite and PostgreSQL databases.

Every test runs in an empty temporary directory with the alchemiser variables
removed from the environment, so the repository's config/alchemiser.toml and
the developer's own settings never leak in; each test passes what it needs.
"""

from __future__ import annotations

import asyncio
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from alchemiser.cli.main import cli
from alchemiser.clock import RealClock
from alchemiser.exit_codes import ExitCode
from alchemiser.store.engine import create_engine, session_factory
from alchemiser.store.queue import DurableQueue

UNREACHABLE_PG = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
KEY_SECRET = "AKTESTSECRET123"
URL_PASSWORD = "hunter2pass"
SECRET_DB_URL = f"postgresql+asyncpg://u:{URL_PASSWORD}@127.0.0.1/x"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """An empty cwd and no alchemiser settings inherited from the environment."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("ALCHEMISER", "ALPACA__")) or upper == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def invoke(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """Run ``alchemiser ARGS`` in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(cli, list(args), env=dict(env or {}), catch_exceptions=False)


def everything(result: Result) -> str:
    return result.stdout + result.stderr


def line_with(text: str, needle: str) -> str:
    """The one output line naming ``needle`` (fails if none)."""
    found = [line for line in text.splitlines() if needle in line]
    assert found, f"no line mentions {needle!r} in:\n{text}"
    return found[0]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def shown_settings(result: Result) -> dict[str, Any]:
    """`config show` output as ``{"section.key": value}``.

    Read line by line rather than with tomllib so these tests check values even
    while the output is not strictly valid TOML (see test_config_show_is_valid_toml).
    """
    assert result.exit_code == 0, everything(result)
    values: dict[str, Any] = {}
    section = ""
    for line in result.stdout.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1] + "."
        elif " = " in line and not line.startswith("#"):
            key, _, raw = line.partition(" = ")
            values[section + key.strip()] = tomllib.loads(f"v = {raw}")["v"]
    return values


# -- help and usage -------------------------------------------------------------------------


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
    return paths


ALL_COMMANDS = _command_paths(cli)


def test_help_lists_the_verbs() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    listed = set(re.findall(r"^  ([a-z][\w-]*)\s", result.stdout, re.MULTILINE))
    assert {"run", "config", "db", "status", "doctor", "queue"} <= listed
    assert "Exit codes" in result.stdout


def test_the_command_tree_has_the_expected_sub_verbs() -> None:
    assert {
        ("config", "check"),
        ("config", "show"),
        ("db", "upgrade"),
        ("db", "current"),
        ("queue", "list"),
        ("queue", "dlq"),
        ("queue", "redrive"),
    } <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_verb_has_help(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, everything(result)
    assert result.stdout.startswith("Usage: ")
    assert " ".join(path) in result.stdout.splitlines()[0]


@pytest.mark.parametrize(
    "args",
    [
        ["frobnicate"],
        ["--no-such-option", "status"],
        ["status", "--no-such-option"],
        ["config", "nope"],
        ["config", "check", "a.toml", "b.toml"],
        ["db", "upgrade", "--revision"],
        ["queue", "redrive", "not-a-number"],
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == ExitCode.USAGE, everything(result)
    assert "Usage:" in result.stderr or "Error" in result.stderr


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("alchemiser")


# -- config check ---------------------------------------------------------------------------

VALID = """
mode = "paper"

[schedule]
hedge_evaluation = "15:30"

[logging]
level = "DEBUG"
"""


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    path = write(tmp_path / "good.toml", VALID)
    result = invoke("config", "check", str(path))
    assert result.exit_code == 0, everything(result)
    assert "ok" in result.stdout
    assert str(path) in result.stdout


def test_config_check_without_a_file_uses_defaults() -> None:
    result = invoke("config", "check")
    assert result.exit_code == 0, everything(result)
    assert "ok" in result.stdout
    assert "defaults" in result.stdout


def test_config_check_uses_the_global_option_and_env(tmp_path: Path) -> None:
    good = write(tmp_path / "good.toml", VALID)
    bad = write(tmp_path / "bad.toml", '[schedule]\nhedge_evaluation = "25:00"\n')
    assert invoke("--config", str(good), "config", "check").exit_code == 0
    assert invoke("--config", str(bad), "config", "check").exit_code == ExitCode.CONFIG
    assert invoke("config", "check", env={"ALCHEMISER_CONFIG": str(bad)}).exit_code == 3
    assert invoke("config", "check", env={"ALCHEMISER_CONFIG": str(good)}).exit_code == 0


def test_config_check_picks_up_the_default_file_in_the_cwd(tmp_path: Path) -> None:
    write(tmp_path / "config" / "alchemiser.toml", '[logging]\nlevel = "LOUD"\n')
    result = invoke("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    assert "logging.level" in result.stderr


def test_config_check_names_a_missing_explicit_file(tmp_path: Path) -> None:
    result = invoke("config", "check", str(tmp_path / "nope.toml"))
    assert result.exit_code == ExitCode.CONFIG
    assert "nope.toml" in result.stderr
    assert "not found" in result.stderr


def test_config_check_names_every_error_with_path_and_value(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.toml",
        '[schedule]\nhedge_evaluation = "25:00"\nfoo = 1\n\n[logging]\nlevel = "INFO"\n',
    )
    result = invoke("config", "check", str(path), env={"ALCHEMISER__LOGGING__LEVEL": "LOUD"})
    assert result.exit_code == ExitCode.CONFIG, everything(result)
    assert "ok" not in result.stdout
    err = result.stderr
    assert "25:00" in line_with(err, "schedule.hedge_evaluation")
    assert "unknown" in line_with(err, "schedule.foo")
    level = line_with(err, "logging.level")
    assert "LOUD" in level
    assert "ALCHEMISER__LOGGING__LEVEL" in level
    assert "3 problem" in err


def test_config_check_names_an_unknown_key_from_the_environment() -> None:
    result = invoke("config", "check", env={"ALCHEMISER__SCHEDULE__FOO": "1"})
    assert result.exit_code == ExitCode.CONFIG, everything(result)
    assert "ALCHEMISER__SCHEDULE__FOO" in line_with(result.stderr, "schedule.foo")


def test_config_check_reports_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", "[schedule\nhedge_evaluation = \n")
    result = invoke("config", "check", str(path))
    assert result.exit_code == ExitCode.CONFIG
    assert "TOML" in result.stderr


@pytest.mark.parametrize(
    ("key", "env_name"),
    [("key", "ALPACA__KEY"), ("secret", "ALPACA__SECRET"), ("endpoint", "ALPACA__ENDPOINT")],
)
def test_config_check_rejects_a_secret_in_the_file(tmp_path: Path, key: str, env_name: str) -> None:
    path = write(tmp_path / "secret.toml", f'[broker]\n{key} = "PKFILESECRET999"\n')
    result = invoke("config", "check", str(path))
    assert result.exit_code == ExitCode.CONFIG, everything(result)
    line = line_with(result.stderr, f"broker.{key}")
    assert env_name in line
    assert "PKFILESECRET999" not in everything(result)


def test_config_check_rejects_a_database_password_in_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pw.toml", '[database]\nurl = "postgresql+asyncpg://u:filepw1234@db/x"\n'
    )
    result = invoke("config", "check", str(path))
    assert result.exit_code == ExitCode.CONFIG, everything(result)
    assert "DATABASE_URL" in line_with(result.stderr, "database.url")
    assert "filepw1234" not in everything(result)


def test_config_check_accepts_a_database_url_without_password_in_the_file(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "nopw.toml", '[database]\nurl = "postgresql+asyncpg://u@db/x"\n')
    result = invoke("config", "check", str(path))
    assert result.exit_code == 0, everything(result)


def test_config_error_from_a_secret_env_never_echoes_it() -> None:
    bad_url = f"mysql://u:{URL_PASSWORD}@127.0.0.1/x"
    result = invoke("config", "check", env={"DATABASE_URL": bad_url})
    assert result.exit_code == ExitCode.CONFIG, everything(result)
    assert "DATABASE_URL" in line_with(result.stderr, "database.url")
    assert URL_PASSWORD not in everything(result)


# -- config show ----------------------------------------------------------------------------


def test_env_overrides_the_file_in_config_show(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        '[schedule]\nhedge_evaluation = "15:30"\nhedge_roll_check = "15:45"\n\n'
        '[logging]\nlevel = "DEBUG"\n\n[database]\nurl = "sqlite+aiosqlite:///from-file.db"\n',
    )
    env = {
        "ALCHEMISER__LOGGING__LEVEL": "ERROR",
        "ALCHEMISER__SCHEDULE__HEDGE_ROLL_CHECK": "close-10m",
        "ALCHEMISER__DATABASE__URL": "sqlite+aiosqlite:///from-prefixed-env.db",
        "DATABASE_URL": "sqlite+aiosqlite:///from-secret-env.db",
    }
    shown = shown_settings(invoke("--config", str(path), "config", "show", env=env))
    assert shown["logging.level"] == "ERROR"
    assert shown["schedule.hedge_roll_check"] == "close-10m"
    assert shown["schedule.hedge_evaluation"] == "15:30"  # file
    assert shown["schedule.income_screen"] == "open+60m"  # default
    assert shown["database.url"] == "sqlite+aiosqlite:///from-secret-env.db"

    plain = shown_settings(invoke("--config", str(path), "config", "show"))
    assert plain["logging.level"] == "DEBUG"
    assert plain["database.url"] == "sqlite+aiosqlite:///from-file.db"


def test_config_show_is_valid_toml() -> None:
    """`config show` says it prints TOML: a TOML parser must accept it (each table once)."""
    result = invoke("config", "show")
    assert result.exit_code == 0, everything(result)
    headers = re.findall(r"^\[([\w.]+)\]$", result.stdout, re.MULTILINE)
    assert len(headers) == len(set(headers)), f"tables declared twice: {headers}"
    parsed = tomllib.loads(result.stdout)
    assert parsed["schedule"]["hedge_evaluation"] == "close-30m"


def test_config_show_hides_secrets() -> None:
    env = {
        "ALPACA__KEY": KEY_SECRET,
        "ALPACA__SECRET": "SKSECRET456789",
        "DATABASE_URL": SECRET_DB_URL,
    }
    result = invoke("config", "show", env=env)
    shown = shown_settings(result)
    for secret in (KEY_SECRET, "SKSECRET456789", URL_PASSWORD):
        assert secret not in everything(result)
    url = shown["database.url"]
    assert url.startswith("postgresql+asyncpg://u:")
    assert url.endswith("@127.0.0.1/x")
    assert shown["broker.key"] != KEY_SECRET


def test_config_show_with_show_secrets_prints_them() -> None:
    env = {"ALPACA__KEY": KEY_SECRET, "DATABASE_URL": SECRET_DB_URL}
    shown = shown_settings(invoke("config", "show", "--show-secrets", env=env))
    assert shown["broker.key"] == KEY_SECRET
    assert shown["database.url"] == SECRET_DB_URL


def test_config_show_exits_3_on_invalid_config() -> None:
    result = invoke("config", "show", env={"ALCHEMISER__SCHEDULE__IV_CAPTURE": "noon"})
    assert result.exit_code == ExitCode.CONFIG
    assert "noon" in line_with(result.stderr, "schedule.iv_capture")


# -- db -------------------------------------------------------------------------------------


def with_password(url: str) -> str:
    """A PostgreSQL URL with a password added (trust auth accepts any); SQLite unchanged."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.set(password=URL_PASSWORD).render_as_string(hide_password=False)


def test_db_upgrade_then_current_on_an_empty_database(empty_db_url: str) -> None:
    env = {"DATABASE_URL": with_password(empty_db_url)}
    before = invoke("db", "current", env=env)
    assert before.exit_code == ExitCode.DATABASE, everything(before)
    assert "alchemiser db upgrade" in everything(before)
    assert "up to date" not in before.stdout

    up = invoke("db", "upgrade", env=env)
    assert up.exit_code == 0, everything(up)
    assert "upgraded" in up.stdout

    now = invoke("db", "current", env=env)
    assert now.exit_code == 0, everything(now)
    assert "up to date" in now.stdout

    again = invoke("db", "upgrade", env=env)
    assert again.exit_code == 0, everything(again)
    assert "already at" in again.stdout

    status = invoke("status", env=env)
    assert status.exit_code == 0, everything(status)
    for result in (before, up, now, again, status):
        assert URL_PASSWORD not in everything(result)


@pytest.mark.parametrize(
    "verb", [["db", "current"], ["db", "upgrade"], ["status"], ["queue", "list"]], ids=" ".join
)
def test_unreachable_database_exits_4_naming_the_url(verb: list[str]) -> None:
    result = invoke(*verb, env={"DATABASE_URL": UNREACHABLE_PG})
    assert result.exit_code == ExitCode.DATABASE, everything(result)
    assert "127.0.0.1:1/none" in result.stderr


def test_unreachable_database_message_hides_the_password() -> None:
    url = f"postgresql+asyncpg://postgres:{URL_PASSWORD}@127.0.0.1:1/none"
    result = invoke("db", "current", env={"DATABASE_URL": url})
    assert result.exit_code == ExitCode.DATABASE
    assert "127.0.0.1:1/none" in result.stderr
    assert URL_PASSWORD not in everything(result)


# -- doctor ---------------------------------------------------------------------------------


def test_doctor_passes_on_a_migrated_database_with_the_sim_broker(db_url: str) -> None:
    result = invoke("doctor", env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, everything(result)
    assert "all checks passed" in result.stdout
    assert "[  ok] schema" in result.stdout
    assert "[  ok] broker" in result.stdout
    assert "FAIL" not in result.stdout


def test_doctor_fails_for_alpaca_without_credentials(db_url: str) -> None:
    env = {"DATABASE_URL": db_url, "ALCHEMISER__BROKER__KIND": "alpaca"}
    result = invoke("doctor", env=env)
    assert result.exit_code == ExitCode.CONFIG, everything(result)
    assert "ALPACA__KEY" in line_with(result.stdout, "broker")


def test_doctor_with_alpaca_credentials_passes_and_hides_them(db_url: str) -> None:
    env = {
        "DATABASE_URL": db_url,
        "ALCHEMISER__BROKER__KIND": "alpaca",
        "ALPACA__KEY": KEY_SECRET,
        "ALPACA__SECRET": "SKSECRET456789",
    }
    result = invoke("doctor", env=env)
    assert result.exit_code == 0, everything(result)
    assert KEY_SECRET not in everything(result)
    assert "SKSECRET456789" not in everything(result)


def test_doctor_refuses_an_empty_database_without_auto_migrate(empty_db_url: str) -> None:
    env = {"DATABASE_URL": empty_db_url, "ALCHEMISER__DATABASE__AUTO_MIGRATE": "false"}
    result = invoke("doctor", env=env)
    assert result.exit_code == ExitCode.DATABASE, everything(result)
    assert "alchemiser db upgrade" in line_with(result.stdout, "schema")


def test_doctor_warns_but_passes_on_an_empty_database_with_auto_migrate(
    empty_db_url: str,
) -> None:
    result = invoke("doctor", env={"DATABASE_URL": empty_db_url})
    assert result.exit_code == 0, everything(result)
    assert "WARN" in line_with(result.stdout, "schema")


def test_doctor_exits_3_on_invalid_config() -> None:
    result = invoke("doctor", env={"ALCHEMISER__LOGGING__LEVEL": "LOUD"})
    assert result.exit_code == ExitCode.CONFIG, everything(result)
    assert "LOUD" in line_with(result.stdout, "logging.level")


def test_doctor_exits_4_on_an_unreachable_database() -> None:
    result = invoke("doctor", env={"DATABASE_URL": UNREACHABLE_PG})
    assert result.exit_code == ExitCode.DATABASE, everything(result)
    assert "127.0.0.1:1/none" in line_with(result.stdout, "database")


# -- status ---------------------------------------------------------------------------------


def _next_job_lines(output: str) -> list[str]:
    lines = output.splitlines()
    start = lines.index("next jobs:") + 1
    found = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        found.append(line)
    return found


def test_status_on_a_migrated_database(db_url: str) -> None:
    result = invoke("status", env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, everything(result)
    out = result.stdout
    assert "not running" in line_with(out, "daemon:")
    assert re.search(r"^queue:\s+\S", out, re.MULTILINE), out
    jobs = _next_job_lines(out)
    assert jobs, out
    for line in jobs:
        assert re.fullmatch(r"  \d{4}-\d{2}-\d{2} \d{2}:\d{2} E[SD]T  [a-z_]+", line), line
    assert any(line.endswith("hedge_evaluation") for line in jobs)
    assert "sim" in line_with(out, "mode:")


def test_status_counts_queued_jobs(db_url: str) -> None:
    async def enqueue() -> None:
        engine = create_engine(db_url)
        try:
            queue = DurableQueue(session_factory(engine), RealClock())
            await queue.enqueue("cli_test", {"n": 1})
            await queue.enqueue("cli_test", {"n": 2})
        finally:
            await engine.dispose()

    asyncio.run(enqueue())
    result = invoke("status", env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, everything(result)
    assert "pending 2" in line_with(result.stdout, "queue:")


def test_status_on_an_empty_database_exits_4(empty_db_url: str) -> None:
    result = invoke("status", env={"DATABASE_URL": empty_db_url})
    assert result.exit_code == ExitCode.DATABASE, everything(result)
    assert "alchemiser db upgrade" in result.stderr
