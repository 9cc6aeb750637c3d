"""The operator commands of `farebox-server`, run in-process against a real SQLite file."""

from __future__ import annotations

import argparse
import asyncio
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from farebox.server import environment
from farebox.server.cli import build_parser, main
from farebox.server.ledger import migrations as schema
from farebox.server.ledger import postgres_store, sqlite_store
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.store import open_store
from tests.server.conftest import ALMATY
from tests.server.helpers import at, tap

DOCS = Path(__file__).resolve().parents[2] / "docs"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert run("init", "--db", url)[0] == 0
    return url


def test_a_top_up_is_posted_once_and_shown(db: str) -> None:
    topup = ("account", "topup", "nfc:0a", "500", "--channel", "sms", "--ref", "p1", "--db", db)
    assert run(*topup) == (0, "posted: transfer #1 top_up:sms:p1 500.00 KZT\n")
    assert run(*topup) == (0, "already posted: transfer #1 top_up:sms:p1 500.00 KZT\n")
    status, out = run("account", "show", "nfc:0a", "--db", db)
    assert status == 0
    assert "balance    500.00 KZT" in out
    assert "top_up:sms:p1" in out


def test_a_conflicting_top_up_exits_with_a_message(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run("account", "topup", "nfc:0a", "500", "--channel", "sms", "--ref", "p1", "--db", db)
    assert (
        run("account", "topup", "nfc:0a", "900", "--channel", "sms", "--ref", "p1", "--db", db)[0]
        == 2
    )
    assert "reused with different content" in capsys.readouterr().err


def test_blocks_and_the_stoplist(db: str) -> None:
    assert run("card", "block", "nfc:0a", "--reason", "lost", "--db", db)[0] == 0
    assert run("stoplist", "size", "--db", db) == (0, "1\n")
    assert run("stoplist", "delta", "--since", "0", "--db", db)[1].splitlines()[1:] == ["+ nfc:0a"]
    assert run("stoplist", "version", "--db", db)[1].startswith("version 1 checksum ")
    # A mistyped token, or another reason, is not a card released.
    assert run("card", "unblock", "nfc:0b", "--reason", "lost", "--db", db) == (
        1,
        "nfc:0b has no lost block; nothing changed\n",
    )
    assert run("card", "unblock", "nfc:0a", "--reason", "stolen", "--db", db)[0] == 1
    assert run("card", "unblock", "nfc:0a", "--reason", "lost", "--db", db)[0] == 0
    assert run("stoplist", "size", "--db", db) == (0, "0\n")
    status, out = run("stoplist", "delta", "--since", "0", "--until", "1", "--db", db)
    assert status == 0
    assert out.splitlines()[1:] == ["+ nfc:0a"]
    assert run("stoplist", "delta", "--since", "0", "--db", db)[1].splitlines()[1:] == []


def test_revenue_report_and_verify(db: str) -> None:
    async def ride() -> None:
        store = await open_store(db)
        try:
            await Ledger(store, ALMATY).post_taps(
                [
                    tap("bus-1", 1, "nfc:0a", at(2, "08:00")),
                    tap("bus-2", 1, "nfc:0b", at(2, "09:00"), route="32"),
                ]
            )
        finally:
            await store.close()

    asyncio.run(ride())
    status, out = run("report", "revenue", "--day", "2026-03-02", "--db", db)
    assert status == 0
    assert "| citybus | 12 | 200.00 KZT |" in out
    assert "| all | all | 400.00 KZT |" in out
    assert run("ledger", "verify", "--db", db) == (0, "ledger verified: every invariant holds\n")

    with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
        connection.execute("UPDATE accounts SET posted = posted + 1 WHERE id = 'rider:nfc:0a'")
        connection.execute("UPDATE stoplist_head SET size = size + 1")
    status, out = run("ledger", "verify", "--db", db)
    assert status == 1
    assert "violation: KZT: balances sum to 1" in out
    assert "violation: rider:nfc:0a: stored" in out
    assert "violation: stoplist size is kept as 3, but 2 tokens are listed" in out


def test_the_store_comes_from_the_environment(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(environment.FAREBOX_DB, db)
    assert run("stoplist", "size") == (0, "0\n")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("init", "--db", "mysql://somewhere/ledger"), "unsupported store 'mysql'"),
        (
            ("account", "topup", "nfc:0a", "1.005", "--channel", "sms", "--ref", "p"),
            "more than 2 decimals",
        ),
        (
            ("account", "topup", "bad\ttoken", "1", "--channel", "sms", "--ref", "p"),
            "printable characters",
        ),
    ],
)
def test_bad_input_exits_2(
    db: str, argv: tuple[str, ...], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv, *(() if "--db" in argv else ("--db", db)))[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("farebox-server: ")
    assert says in err


def test_a_log_level_not_known_exits_2(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(environment.FAREBOX_LOG_LEVEL, "loud")
    assert run("stoplist", "size", "--db", db)[0] == 2
    assert "FAREBOX_LOG_LEVEL is one of DEBUG, INFO" in capsys.readouterr().err


def command_lines(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[str]:
    """`farebox-server account show` and the like: every leaf command of the parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_lines(sub, (*words, name))
            return
    yield " ".join(("farebox-server", *words))


def test_every_command_and_variable_is_documented() -> None:
    text = "".join(page.read_text(encoding="utf-8") for page in sorted(DOCS.glob("*.md")))
    for line in command_lines(build_parser()):
        assert line in text, line
    variables = [v for k, v in vars(environment).items() if k.startswith("FAREBOX_")]
    assert environment.FAREBOX_DB in variables
    for variable in variables:
        assert f"`{variable}`" in text, variable


def test_the_commands_run_on_either_store(store_url: str) -> None:
    topup = ("account", "topup", "nfc:0a", "500", "--channel", "kiosk", "--ref", "k1")
    assert run("init", "--db", store_url)[0] == 0
    assert run(*topup, "--db", store_url)[0] == 0
    assert "balance    500.00 KZT" in run("account", "show", "nfc:0a", "--db", store_url)[1]
    assert run("ledger", "verify", "--db", store_url)[0] == 0


def test_a_store_not_at_this_code_s_schema_is_refused_until_init(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    show = ("stoplist", "version", "--db", store_url)
    assert run(*show)[0] == 2
    assert "the store has no schema" in capsys.readouterr().err
    every = schema.migrations
    latest = every("sqlite")[-1].version
    with monkeypatch.context() as older:  # the schema an older release left
        for module in (sqlite_store, postgres_store):
            older.setattr(module, "migrations", lambda dialect: every(dialect)[:-1])
        assert run("init", "--db", store_url)[0] == 0
    assert run(*show)[0] == 2
    assert (
        f"the store is at schema version {latest - 1}, this code needs {latest}: "
        "run `farebox-server init` with the same --db first"
    ) in capsys.readouterr().err
    assert run("init", "--db", store_url)[0] == 0
    assert run(*show)[0] == 0
    monkeypatch.setattr(schema, "migrations", lambda dialect: every(dialect)[:-1])  # a downgrade
    assert run(*show)[0] == 2
    assert f"schema version {latest} is newer than this code's" in capsys.readouterr().err


def test_a_backup_copies_the_store_as_of_one_moment_while_it_serves(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topup = ("account", "topup", "nfc:0a", "500", "--channel", "kiosk", "--ref", "k1")
    assert run(*topup, "--db", db)[0] == 0
    assert run("card", "block", "nfc:0b", "--reason", "lost", "--db", db)[0] == 0
    writer = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a server in the middle of a write
    writer.execute("UPDATE stoplist_head SET version = version + 1")
    copy = tmp_path / "copy.db"
    status, out = run("backup", "--to", str(copy), "--db", db)
    writer.execute("ROLLBACK")
    writer.close()
    assert status == 0
    assert out.startswith(f"store {db} copied to {copy} (")
    kept = f"sqlite:///{copy}"
    assert run("ledger", "verify", "--db", kept)[0] == 0
    assert run("stoplist", "version", "--db", kept) == run("stoplist", "version", "--db", db)
    assert "balance    500.00 KZT" in run("account", "show", "nfc:0a", "--db", kept)[1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert run("backup", "--to", str(copy), "--db", db)[0] == 2  # never over a file
    assert "exists: back up to a new file" in capsys.readouterr().err


@pytest.mark.postgres
def test_a_backup_of_postgresql_is_left_to_its_own_tools(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("init", "--db", postgres_dsn)[0] == 0
    assert run("backup", "--to", str(tmp_path / "copy.db"), "--db", postgres_dsn)[0] == 2
    assert "pg_dump" in capsys.readouterr().err
    assert not (tmp_path / "copy.db").exists()


def test_a_carrier_named_with_a_colon_is_refused_at_start(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(environment.FAREBOX_CARRIER, "city:bus")
    assert run("run", "--db", db, "--listen", "127.0.0.1:0")[0] == 2
    assert "a carrier's name may not hold ':' (FAREBOX_CARRIER)" in capsys.readouterr().err
