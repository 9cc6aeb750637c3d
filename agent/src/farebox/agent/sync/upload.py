"""The uploader: the journal's unacknowledged records to the server, one batch at a time.

The outbox is the journal itself (OpenTelemetry's BatchProcessor shape over a durable
table): records wait there, committed before the rider saw any feedback, until the server
acknowledges them. A flush starts when `batch_size` records wait or the oldest waiting one
has waited `flush_interval_s`, and drains the backlog in batches of at most
`max_batch_records`. The sans-I/O `Uploader` of farebox.protocol.session decides what an
answer means; this loop only carries bytes and applies the outcome to the store:

- Acknowledged: mark the records acked (they are pruned only after retention);
- Rewind: the server lost acknowledged records (restored from a backup); if the journal
  still holds every record after its cursor, count them unacked again and resend;
- Halted: a fork, a bad signature, a malformed batch: stop uploading and say so in
  `status`; the validator keeps every record and goes on deciding taps offline. Every
  HALTED_RETRY_S the batch goes again: once an operator has set the server right,
  uploads resume by themselves, without a restart.

An answer that is none of these (a 404 while the server is deployed, another problem
document, a proxy's page) says nothing about the records: the batch is retried with
backoff and full jitter, like an answer that never came. A batch sent again after a lost
answer is safe: the server acks it again and posts nothing twice. Restarting loses
nothing either, since the acked cursor is in the journal.
"""

from __future__ import annotations

import logging
import time
from functools import partial

from farebox.agent.errors import (
    BatchTooLargeError,
    ServerRejectedError,
    ServerUnavailableError,
    StoreError,
)
from farebox.agent.store.state import Store
from farebox.agent.sync.client import Answer
from farebox.agent.sync.context import SyncContext
from farebox.protocol.chain import Cursor
from farebox.protocol.errors import ProtocolError
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import Ack, Refusal, decode_message, encode_message
from farebox.protocol.records import EncodedRecord
from farebox.protocol.session import (
    Acknowledged,
    Halted,
    Resumed,
    Rewind,
    SyncEvent,
    Uploader,
)

log = logging.getLogger(__name__)
BATCHES_PATH = "/v1/batches"
UPLOADS = "uploads"
"""The uploads' errors and answers, for `status` (see `Reporter.answered`)."""
# How often, at most, the loop looks at the journal's depth between flushes.
TICK_S = 1.0
# How often a halted uploader sends its batch again, to see if the server now takes it.
HALTED_RETRY_S = 3600.0


class UploadLoop:
    """Uploads one device's journal until the sync stops; `halted` says why it waits."""

    def __init__(self, context: SyncContext, key: SigningKey) -> None:
        self.context = context
        self.key = key
        self.max_records = context.config.max_batch_records
        self.halted: str | None = None

    async def run(self) -> None:
        context, config = self.context, self.context.config
        tick = min(TICK_S, config.flush_interval_s)
        waiting_since: float | None = None
        while not context.stopping:
            depth = await context.on_store(_depth, context.store)
            if depth == 0:
                waiting_since = None
            else:
                waiting_since = waiting_since or time.monotonic()
                due = time.monotonic() - waiting_since >= config.flush_interval_s
                ready = (depth >= config.batch_size or due) and context.window_open()
                if ready and await self.flush():
                    waiting_since = None
            await context.pause(tick if self.halted is None else HALTED_RETRY_S)

    async def flush(self) -> bool:
        """Send batches until nothing waits; False if stopped, halted or failing first."""
        context = self.context
        store = context.store
        while not context.stopping:
            acked = await context.on_store(_acked, store)
            uploader = Uploader(store.device, acked, self.max_records)
            pending = await context.on_store(store.pending, self.max_records)
            if not pending:
                return True
            try:
                event = await context.call(partial(self._send, uploader, pending), UPLOADS)
            except ServerUnavailableError as error:
                context.reporter.error(str(error), UPLOADS)
                return False
            except BatchTooLargeError as error:
                if self.max_records == 1:
                    self._halt(f"the server refuses even a single record: {error}")
                    return False
                self.max_records = max(1, self.max_records // 2)
                log.warning("%s: sending at most %d records a batch", error, self.max_records)
                continue
            except ServerRejectedError as error:
                self._halt(str(error))
                return False
            try:
                if not await self._apply(uploader, event):
                    return False
            except StoreError as error:
                # The server holds the records; they are marked acked by the next answer.
                log.warning("cannot record the server's answer: %s", error)
                context.reporter.error(str(error), UPLOADS)
                return False
        return False

    async def _send(self, uploader: Uploader, pending: list[EncodedRecord]) -> SyncEvent:
        context = self.context
        batch = uploader.next_batch(pending, self.key, context.clock())
        if batch is None:
            raise StoreError("no records to send")  # flush() only sends what is pending
        try:
            answer = await context.client.request("POST", BATCHES_PATH, encode_message(batch))
            message = _ack_or_refusal(answer)
        except BaseException:
            uploader.transport_failed()  # the same records go again, signed afresh
            raise
        return uploader.receive(message)

    async def _apply(self, uploader: Uploader, event: SyncEvent) -> bool:
        """Apply the outcome of a batch to the store; False if uploads halt."""
        context = self.context
        store = context.store
        if isinstance(event, Acknowledged):
            await context.on_store(store.acknowledge, event.cursor, context.clock())
            self._resume()
            return True
        if isinstance(event, Rewind):
            held = await context.on_store(store.resume_point, event.cursor.seq)
            event = uploader.rewind(held)
            if isinstance(event, Resumed):
                log.warning(
                    "the server holds our records only through %d: sending the rest again",
                    event.cursor.seq,
                )
                await context.on_store(store.unacknowledge, event.cursor)
                return True
        if isinstance(event, Halted):
            self._halt(event.reason)
            return False
        return True

    def _halt(self, reason: str) -> None:
        log.error(
            "uploads halted for an operator (tried again in %.0f s): %s", HALTED_RETRY_S, reason
        )
        self.halted = reason
        self.context.reporter.halted(reason)

    def _resume(self) -> None:
        if self.halted is not None:
            log.warning("uploads resumed: the server takes batches again")
            self.halted = None
            self.context.reporter.resumed()


def _ack_or_refusal(answer: Answer) -> Ack | Refusal:
    """The protocol's answer to a batch, or ServerUnavailableError (retried) for any other."""
    try:
        message = decode_message(answer.body)
    except ProtocolError:
        message = None
    if answer.status == 200 and isinstance(message, Ack):
        return message
    if answer.status == 409 and isinstance(message, Refusal):
        return message
    code = f" {answer.problem_code}" if answer.problem_code else ""
    raise ServerUnavailableError(
        f"POST {BATCHES_PATH} answered {answer.status}{code}, neither an ack nor a refusal"
    )


def _depth(store: Store) -> int:
    """Records waiting for an acknowledgement (on the store thread, like every store read)."""
    return store.cursor.seq - store.acked.seq


def _acked(store: Store) -> Cursor:
    return store.acked
