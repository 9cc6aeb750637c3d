"""A store whose disk is full: the upload is refused as retryable, nothing of it is kept,
and the same batch is taken once space is back.

The disk fills for real where it can without root: SQLite reaches a size cap (`PRAGMA
max_page_count`) and answers SQLITE_FULL itself. PostgreSQL cannot be capped that way, so
a trigger on `records` raises the very error a full disk makes it raise (SQLSTATE 53100,
`disk_full`), from the server, through asyncpg, like the real one.
"""

from __future__ import annotations

import json
import logging

import pytest

from farebox.protocol.messages import Ack, decode_message
from farebox.server.ledger.store import Session
from tests.server.sync.conftest import Device, Server
from tests.server.sync.test_device_api import batch, count
from tests.support.records import chain

_NO_SPACE = """
CREATE FUNCTION no_space() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
END $$;
CREATE TRIGGER no_space BEFORE INSERT ON records FOR EACH STATEMENT EXECUTE FUNCTION no_space();
"""


async def _fill(session: Session, sqlite: bool) -> None:
    if sqlite:
        ((pages,),) = await session.fetch("PRAGMA page_count")
        await session.execute(f"PRAGMA max_page_count = {pages}")
    else:
        await session.execute(_NO_SPACE)


async def _free(session: Session, sqlite: bool) -> None:
    if sqlite:
        await session.execute("PRAGMA max_page_count = 1073741823")
    else:
        await session.execute("DROP TRIGGER no_space ON records")


async def test_a_full_store_refuses_the_upload_as_retryable_and_keeps_nothing(
    server: Server, device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite = server.store.url.startswith("sqlite")
    journal = chain(device=device.id, count=300)  # more than the free room of any page
    body = batch(device, journal)
    await server.store.run(_fill, sqlite)

    with caplog.at_level(logging.ERROR, logger="farebox.server.http.problems"):
        status, answer, headers = await device.request("POST", "/v1/batches", body)
    assert headers["Content-Type"].startswith("application/problem+json")
    assert (status, json.loads(answer)["code"]) == (503, "storage_full")  # a device retries
    assert any("storage_full" in message for message in caplog.messages)  # the operator's log
    for table in ("records", "transfers", "request_nonces"):
        assert await count(server, f"SELECT count(*) FROM {table}") == 0  # noqa: S608
    assert await count(server, "SELECT cursor_seq FROM devices") == 0

    await server.store.run(_free, sqlite)
    status, answer, _ = await device.request("POST", "/v1/batches", body)
    assert status == 200
    ack = decode_message(answer)
    assert isinstance(ack, Ack)
    assert ack.cursor.seq == 300
    assert await count(server, "SELECT count(*) FROM records") == 300
    status, again, _ = await device.request("POST", "/v1/batches", body)
    assert (status, decode_message(again)) == (200, ack)  # and no second posting
