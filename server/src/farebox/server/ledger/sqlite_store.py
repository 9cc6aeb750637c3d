"""The SQLite store: one file, zero set-up, the embedded default.

sqlite3 blocks, and a thread of the server's own process would wait for the GIL whenever
the event loop runs Python (decoding an upload, say): each statement gives the GIL up and
takes it back. So the connection lives in a writer process of the store's own
(sqlite_writer.py), which runs whole transactions, jobs and all. A job is a module-level
function and plain values (see `Store.run`): it is pickled here and sent over a socket
pair, and its result comes back the same way. SQLite has one writer anyway, so
transactions queue for the writer, and those that queued while one was running commit
together (group commit): each runs in a savepoint of its own, a failing one is rolled back
to its savepoint alone, and every caller hears back only after the shared COMMIT. A commit
costs about as much for one batch as for several (its cost is the pages it writes, and
batches share the hot ones), so under load this multiplies throughput; for the same
reason, after a shared commit the next group waits a moment (GATHER_S) for the callers
still making their work.

The writer is started through multiprocessing's fork server, with the program's main
module and the farebox modules loaded by then, so that a new store costs a fork (about
10 ms), not an interpreter. As in any program using multiprocessing, a main module that
opens an SQLite store starts its work under `if __name__ == "__main__":`. If it
dies, the callers of the transaction it was running hear that its outcome is unknown (a
retry is safe: postings are idempotent), and the next transaction starts a new writer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import multiprocessing
import pickle
import socket
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from farebox.server.errors import MigrationError, StoreError
from farebox.server.ledger import sqlite_writer
from farebox.server.ledger.migrations import migrations
from farebox.server.ledger.store import Session

T = TypeVar("T")
P = ParamSpec("P")
PREFIX = "sqlite:///"
GROUP = 32
"""At most this many waiting transactions share one commit."""
GATHER_S = 0.001
"""How long the next group waits for company when the last one had it and fewer wait."""

_PROCESSES = multiprocessing.get_context("forkserver")

_Job = tuple[bytes, "asyncio.Future[Any]"]
"""A job pickled for the writer, and the future of its caller."""
_Answer = tuple[list[tuple[int, bytes, bool]], list[int]]
"""The writer's answer to a group: each job's pickled outcome by index, the jobs to run
again."""


def _pickled(work: Callable[..., object], *parts: object) -> bytes:
    try:
        return pickle.dumps((work, *parts), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise StoreError(
            f"{getattr(work, '__qualname__', work)!r} cannot go to the SQLite writer: a job is a"
            f" module-level function given values that pickle ({error})"
        ) from error


def _outcome(data: bytes) -> object:
    try:
        return pickle.loads(data)  # noqa: S301 (our own writer)
    except Exception as error:  # noqa: BLE001 - an error class that will not unpickle
        return StoreError(f"cannot read the SQLite writer's answer: {error}")


def _consumed(exchange: asyncio.Future[Any]) -> None:
    """Take an exchange's error, which nobody may be waiting for any more."""
    if not exchange.cancelled():
        exchange.exception()


class _Writer:
    """The writer process of one store, and the socket to it."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._process = process
        self._reader = reader
        self._writer = writer

    @classmethod
    async def start(cls, path: str) -> _Writer:
        """Start a writer on `path`; StoreError if it cannot open the database."""
        ours, theirs = socket.socketpair()
        # The fork server loads the program's main module and the farebox modules loaded
        # by now once, so that each writer forked from it starts with them.
        farebox = sorted(name for name in sys.modules if name.startswith("farebox"))
        _PROCESSES.set_forkserver_preload(["__main__", *farebox])
        process = _PROCESSES.Process(
            target=sqlite_writer.serve,
            args=(path, theirs),
            name="farebox-sqlite-writer",
            daemon=True,
        )
        try:
            await asyncio.to_thread(process.start)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        started = cls(process, reader, writer)
        try:
            problem = await started.ask()
        except (OSError, asyncio.IncompleteReadError) as error:
            problem = f"the writer stopped at once ({error})"
        if problem is not None:
            await started.stop()
            raise StoreError(f"cannot open sqlite:///{path}: {problem}")
        return started

    async def ask(self, request: bytes | None = None) -> Any:
        """Send a framed request (none: read the greeting); return the answer unpickled."""
        if request is not None:
            self._writer.write(request)
        header = await self._reader.readexactly(sqlite_writer.HEADER)
        data = await self._reader.readexactly(sqlite_writer.frame_length(header))
        return pickle.loads(data)  # noqa: S301 (our own writer)

    async def stop(self) -> int | None:
        """Hang up and wait for the writer to finish and exit; return its exit code."""
        self._writer.close()
        with contextlib.suppress(OSError):  # it was gone already
            await self._writer.wait_closed()
        await asyncio.to_thread(self._process.join)
        return self._process.exitcode


class SqliteStore:
    """A ledger in one SQLite file, written by a process of its own."""

    def __init__(self, url: str, path: str) -> None:
        self._url = url
        self._path = path
        self._writer: _Writer | None = None
        self._talking = asyncio.Lock()
        self._closed = False
        self._waiting: collections.deque[_Job] = collections.deque()
        self._group: asyncio.Future[_Answer] | None = None
        self._gathering: asyncio.TimerHandle | None = None

    @property
    def url(self) -> str:
        return self._url

    @classmethod
    async def open(cls, url: str) -> SqliteStore:
        path = url.removeprefix(PREFIX)
        if not path:
            raise StoreError("sqlite:/// needs a file path, e.g. sqlite:///var/lib/farebox.db")
        store = cls(url, path)
        store._writer = await _Writer.start(path)
        return store

    async def _ask(self, kind: str, payload: object) -> Any:
        """Send one request to the writer (starting one if none runs) and return its answer.

        The exchange runs to its end even if the caller stops waiting, so that the next
        request never reads this one's answer."""
        exchange = asyncio.ensure_future(self._exchange(kind, payload))
        exchange.add_done_callback(_consumed)
        return await asyncio.shield(exchange)

    async def _exchange(self, kind: str, payload: object) -> Any:
        async with self._talking:
            if self._writer is None:
                if self._closed:
                    raise StoreError("the store is closed")
                self._writer = await _Writer.start(self._path)
            try:
                return await self._writer.ask(sqlite_writer.frame((kind, payload)))
            except (OSError, asyncio.IncompleteReadError) as error:
                writer, self._writer = self._writer, None
                code = await writer.stop()
                raise StoreError(
                    f"the SQLite writer stopped (exit code {code}): whether its transaction"
                    " committed is unknown"
                ) from error

    async def call(self, action: Callable[..., T], *args: object) -> T:
        """`action(connection, *args)` in the writer (`action` at module level), for
        migrations and tests."""
        data, failed = await self._ask(sqlite_writer.ACTION, _pickled(action, args))
        outcome = _outcome(data)
        if failed:
            raise outcome  # type: ignore[misc]  # an exception, pickled by the writer
        return outcome  # type: ignore[return-value]  # what `action` returned

    async def migrate(self) -> int:
        try:
            return await self.call(sqlite_writer.migrate, migrations("sqlite"))
        except sqlite3.Error as error:
            raise MigrationError(f"migration failed: {error}") from error

    async def run(
        self,
        work: Callable[Concatenate[Session, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        job: _Job = (_pickled(work, args, kwargs), asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        if self._group is None and self._gathering is None:
            self._start_group()
        # A caller that stops waiting cancels its future: a job not started is skipped, a
        # job already running finishes with its group and its result is dropped.
        return await job[1]  # type: ignore[no-any-return]  # the future of `work`'s result

    def _start_group(self) -> None:
        """Send the waiting jobs (up to GROUP) to the writer as one transaction.

        A group starts the moment the one before it ends (from that group's done callback,
        before its callers run again), so that the writer works on the next group while
        the event loop serves the callers of the last one. Under load it waits GATHER_S
        first (see `_group_done`).
        """
        self._gathering = None
        group = [self._waiting.popleft() for _ in range(min(len(self._waiting), GROUP))]
        jobs = [job for job in group if not job[1].cancelled()]
        if not jobs:
            if self._waiting:
                self._start_group()
            return
        running = asyncio.ensure_future(self._ask(sqlite_writer.GROUP, [job[0] for job in jobs]))
        running.add_done_callback(functools.partial(self._group_done, jobs=jobs))
        self._group = running

    def _group_done(self, running: asyncio.Future[_Answer], jobs: list[_Job]) -> None:
        self._group = None
        error = running.exception()
        if error is None:
            answers, again = running.result()
            self._waiting.extendleft(reversed([jobs[index] for index in again]))
        else:
            # The writer stopped, or BEGIN or COMMIT failed: nothing of the group is known
            # to be committed, and its callers are told so.
            answers = []
        if len(jobs) > 1 and len(self._waiting) < len(jobs):
            # The last group had company and fewer callers wait now than it had: the
            # others are still making their work. A commit costs about the same for more
            # jobs, so the next group waits a moment for them (as PostgreSQL's
            # commit_delay does); with batches of 100 this took a tenth off the store's
            # time a tap.
            self._gathering = asyncio.get_running_loop().call_later(GATHER_S, self._start_group)
        elif self._waiting:
            self._start_group()
        if error is not None:
            for _, future in jobs:
                if not future.done():
                    future.set_exception(error)
            return
        for index, data, failed in answers:
            future = jobs[index][1]
            if future.done():
                continue
            outcome = _outcome(data)
            if isinstance(outcome, StoreError) or failed:
                future.set_exception(outcome)  # type: ignore[arg-type]  # an exception
            else:
                future.set_result(outcome)

    async def close(self) -> None:
        """Finish the transactions already asked for, then stop the writer."""
        self._closed = True
        while self._group is not None or self._gathering is not None:
            if self._gathering is not None:
                self._gathering.cancel()
                self._start_group()
            if self._group is not None:
                await asyncio.wait([self._group])
        async with self._talking:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                await writer.stop()
