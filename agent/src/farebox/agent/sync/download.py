"""The downloader: polls each package kind and applies what is new, atomically.

`GET /v1/packages/{kind}?have=N` answers 304 when N is the latest, 404 when nothing is
published, else a signed package: a delta from N where the kind has deltas (stoplist),
or the whole state. `Store.apply_package` verifies the signature against the package keys
from enrollment, applies the package in one transaction and checks the resulting state's
checksum; on any failure the old state stays in force. A delta that does not fit (another
base, a checksum mismatch) is answered by asking again with `have=0`, for a full package.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from farebox.agent.errors import (
    CacheError,
    FullPackageNeededError,
    ServerRejectedError,
    ServerUnavailableError,
)
from farebox.agent.store.state import Store
from farebox.agent.sync.context import SyncContext
from farebox.protocol.errors import ProtocolError
from farebox.protocol.keys import VerifyKey
from farebox.protocol.packages import Package, PackageKind, decode_package

log = logging.getLogger(__name__)
# The config first: it may take the validator out of service; then what taps are priced by.
KINDS = (PackageKind.CONFIG, PackageKind.TARIFF, PackageKind.STOPLIST, PackageKind.KEYSET)


class DownloadLoop:
    """Polls for packages every `package_poll_s` until the sync stops."""

    def __init__(self, context: SyncContext, trusted: tuple[VerifyKey, ...]) -> None:
        self.context = context
        self.trusted = trusted

    async def run(self) -> None:
        context = self.context
        while await context.wait_window():
            await self.poll_all()
            await context.pause(context.config.package_poll_s)

    async def poll_all(self) -> None:
        for kind in KINDS:
            if self.context.stopping:
                return
            try:
                await self.poll(kind)
            except (CacheError, ServerRejectedError, ServerUnavailableError) as error:
                log.error("%s package not applied: %s", kind, error)
                self.context.reporter.error(f"{kind}: {error}")

    async def poll(self, kind: PackageKind) -> None:
        """Fetch and apply the newest `kind` package, if the server has a newer one."""
        context = self.context
        held = await context.on_store(_version, context.store, kind)
        package = await self.fetch(kind, held)
        if package is None:
            return
        try:
            await self.apply(package)
        except FullPackageNeededError as error:
            log.warning("%s: %s; fetching a full package", kind, error)
            package = await self.fetch(kind, 0)
            if package is None:
                return
            await self.apply(package)

    async def fetch(self, kind: PackageKind, have: int) -> Package | None:
        path = f"/v1/packages/{kind.value}?have={have}"
        answer = await self.context.call(partial(self.context.client.request, "GET", path))
        if answer.status in (304, 404):
            return None
        if answer.status != 200:
            raise ServerRejectedError(f"GET {path} answered {answer.status}")
        try:
            return decode_package(answer.body)
        except ProtocolError as error:
            raise CacheError(f"{kind} package does not decode: {error}") from None

    async def apply(self, package: Package) -> None:
        # Verified and merged on a worker thread, written on the store thread: a
        # million-token snapshot never holds up a tap for the seconds it takes to merge.
        context = self.context
        store, now = context.store, context.clock()
        prepared = await asyncio.to_thread(store.prepare_package, package, self.trusted, now)
        await context.on_store(store.commit_package, prepared, now)
        log.info("applied %s package %d", package.kind, package.version)


def _version(store: Store, kind: PackageKind) -> int:
    return store.caches.versions()[kind.value]
