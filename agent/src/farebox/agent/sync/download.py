"""The downloader: polls each package kind and applies what is new, atomically.

`GET /v1/packages/{kind}?have=N` answers 304 when N is the latest, 404 when nothing is
published, else a signed package: a delta from N where the kind has deltas (stoplist),
or the whole state. `Store.apply_package` verifies the signature against the trusted
package keys, applies the package in one transaction and checks the resulting state's
checksum; on any failure the old state stays in force. A package signed by a key the
device does not know (the server rotated its key) sends it for the server's endorsements
(`GET /v1/package-keys`) first: it trusts each new key a key it trusts has endorsed. A
delta that does not fit (another base, a checksum mismatch) is answered by asking again
with `have=0`, for a full package. A stoplist poll also names the checksum of the list
held, so that a server restored from a backup, whose versions no longer mean the lists
the device took, can tell and send the whole of its own.

A 304 for the stoplist is stored as the time the server last confirmed it current: the
server changes its version only when a token enters or leaves it, so a list unchanged
for days is as fresh as the last answer, not as old as its last change.
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
from farebox.agent.sync.enrollment import PackageKeys
from farebox.protocol.errors import ProtocolError
from farebox.protocol.package_keys import decode_endorsements
from farebox.protocol.packages import Package, PackageKind, decode_package

log = logging.getLogger(__name__)
# The config first: it may take the validator out of service; then what taps are priced by.
KINDS = (PackageKind.CONFIG, PackageKind.TARIFF, PackageKind.STOPLIST, PackageKind.KEYSET)


class DownloadLoop:
    """Polls for packages every `package_poll_s` until the sync stops."""

    def __init__(self, context: SyncContext, keys: PackageKeys) -> None:
        self.context = context
        self.keys = keys

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
                self.context.reporter.error(f"{kind}: {error}", _polls(kind))

    async def poll(self, kind: PackageKind) -> None:
        """Fetch and apply the newest `kind` package, if the server has a newer one."""
        context = self.context
        held, checksum = await context.on_store(_held, context.store, kind)
        package = await self.fetch(kind, held, checksum)
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

    async def fetch(
        self, kind: PackageKind, have: int, checksum: bytes | None = None
    ) -> Package | None:
        path = f"/v1/packages/{kind.value}?have={have}"
        if checksum is not None:
            path += f"&checksum={checksum.hex()}"
        context = self.context
        answer = await context.call(partial(context.client.request, "GET", path), _polls(kind))
        if answer.status == 304 and kind is PackageKind.STOPLIST:
            await context.on_store(context.store.confirm_stoplist, have, context.clock())
        if answer.status in (304, 404):
            return None
        if answer.status != 200:
            raise ServerRejectedError(f"GET {path} answered {answer.status}")
        try:
            return decode_package(answer.body)
        except ProtocolError as error:
            raise CacheError(f"{kind} package does not decode: {error}") from None

    async def apply(self, package: Package) -> None:
        if not self.keys.knows(package.key_id):
            await self.learn_keys()
        # Verified and merged on a worker thread, written on the store thread: a
        # million-token snapshot never holds up a tap for the seconds it takes to merge.
        context = self.context
        store, now, trusted = context.store, context.clock(), self.keys.trusted
        prepared = await asyncio.to_thread(store.prepare_package, package, trusted, now)
        await context.on_store(store.commit_package, prepared, now)
        log.info("applied %s package %d", package.kind, package.version)

    async def learn_keys(self) -> None:
        """Fetch the server's package-key endorsements and trust the keys they vouch for."""
        path = "/v1/package-keys"
        request = partial(self.context.client.request, "GET", path)
        answer = await self.context.call(request, "package keys")
        if answer.status != 200:
            raise ServerRejectedError(f"GET {path} answered {answer.status}")
        try:
            chain = decode_endorsements(answer.body)
        except ProtocolError as error:
            raise CacheError(f"package-key endorsements do not decode: {error}") from None
        for key in await asyncio.to_thread(self.keys.learn, chain):
            log.warning("now trusting package key %s, endorsed by a trusted one", key.key_id.hex())


def _polls(kind: PackageKind) -> str:
    """The polls of `kind` packages, as a source of errors and answers for `status`."""
    return f"{kind} packages"


def _held(store: Store, kind: PackageKind) -> tuple[int, bytes | None]:
    """The version of `kind` held, and for a stoplist held the checksum of the whole list."""
    version = store.caches.versions()[kind.value]
    if kind is PackageKind.STOPLIST and version > 0:
        return version, store.caches.stoplist.checksum.digest()
    return version, None
