"""Enrollment: make the device key, present it with the operator's one-time token, and keep
what the server answers (docs/protocol.md, section 7).

The steps are ordered so that an interruption can be retried: the key is made first (and
reused by a retry, since a key the server never saw is as good as new), then the server
is asked, the config package it sent is verified and applied, and only then is the
enrollment file written. A device is enrolled once; `force` makes a new key and enrolls
again (a new token is needed, since each works once). The new key waits beside the
working one (`device.key.new`) until the server has taken it and the enrollment is
written: a refused token, or a server away, leaves the device enrolled as it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp

from farebox.agent.config import StateConfig
from farebox.agent.errors import EnrollmentError, ServerUnavailableError
from farebox.agent.runtime import wall_ms
from farebox.agent.store.state import Store
from farebox.agent.sync.client import CBOR, plausible_offset, problem_code
from farebox.agent.sync.enrollment import (
    KEY_FILE,
    EnrolledDevice,
    read_enrollment,
    write_enrollment,
)
from farebox.protocol.enrollment import (
    Enrollment,
    EnrollRequest,
    decode_enrollment,
    encode_enroll_request,
)
from farebox.protocol.errors import ProtocolError
from farebox.protocol.keyfile import load_key, save_key
from farebox.protocol.keys import SigningKey
from farebox.protocol.packages import PackageKind, decode_package

log = logging.getLogger(__name__)
ENROLL_PATH = "/v1/enroll"
NEW_KEY_FILE = KEY_FILE + ".new"


def device_key(path: Path) -> SigningKey:
    """The key kept at `path`, made now if there is none."""
    if path.exists():
        return load_key(path)
    key = SigningKey.generate()
    save_key(path, key)
    return key


def enroll(
    server: str,
    token: str,
    directory: Path,
    *,
    force: bool = False,
    timeout_s: float = 30.0,
    lock_timeout_ms: int = 2000,
    clock: Callable[[], int] = wall_ms,
) -> EnrolledDevice:
    """Enroll this device with `server`; return what is now kept in `directory`.

    Blocking (files, then one request on an event loop of its own): a one-off command.
    """
    held = read_enrollment(directory)
    if held is not None and not force:
        raise EnrollmentError(
            f"already enrolled as {held.device!r} with {held.server}; pass --force to enroll again"
        )
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / (NEW_KEY_FILE if force else KEY_FILE)
    try:
        key = device_key(key_path)
        body = encode_enroll_request(EnrollRequest(token, key.verify_key))
    except ProtocolError as error:
        raise EnrollmentError(str(error)) from None
    sent = clock()
    enrollment = asyncio.run(_ask(server, body, timeout_s))
    # The token is spent now: a server time that cannot be now is left unused (the first
    # sync measures the offset again), never a reason to fail the enrollment.
    offset = plausible_offset(enrollment.server_time_ms, sent, clock())
    database = StateConfig(directory).database
    store = Store.open(database, enrollment.device, lock_timeout_ms=lock_timeout_ms)
    try:
        _apply_config(store, enrollment, clock())
        if offset is None:
            log.warning("the server's time %d cannot be now; not used", enrollment.server_time_ms)
        else:
            store.set_clock_offset_ms(offset)
    finally:
        store.close()
    enrolled = EnrolledDevice(
        enrollment.device, enrollment.kind, enrollment.package_keys, server, clock()
    )
    write_enrollment(directory, enrolled)
    if force:  # a crash before this is mended by running the same command again
        key_path.replace(directory / KEY_FILE)
    log.info("enrolled as %s (%s) with %s", enrolled.device, enrolled.kind, server)
    return enrolled


async def _ask(server: str, body: bytes, timeout_s: float) -> Enrollment:
    url = server.rstrip("/") + ENROLL_PATH
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body, headers={"Content-Type": CBOR}) as response,
        ):
            data = await response.read()
            status, content_type = response.status, response.content_type
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ServerUnavailableError(
            f"cannot reach {url}: {type(error).__name__}: {error}"
        ) from None
    if status != 200:
        code = problem_code(content_type, data)
        if status == 403:
            raise EnrollmentError(
                f"the server refused the token ({code or status}): unknown, expired, or used by"
                " another key or a revoked device"
            )
        raise EnrollmentError(f"POST {url} answered {status}" + (f" {code}" if code else ""))
    try:
        return decode_enrollment(data)
    except ProtocolError as error:
        raise EnrollmentError(f"the enrollment does not decode: {error}") from None


def _apply_config(store: Store, enrollment: Enrollment, now_ms: int) -> None:
    """Verify and apply the config package sent with the enrollment, unless held already."""
    try:
        package = decode_package(enrollment.config_package)
    except ProtocolError as error:
        raise EnrollmentError(f"the enrollment's config package does not decode: {error}") from None
    if package.kind is not PackageKind.CONFIG:
        raise EnrollmentError(f"the enrollment carries a {package.kind} package, not a config")
    if store.caches.versions()[PackageKind.CONFIG.value] >= package.version:
        return  # enrolled again (--force) with a config this validator already holds
    store.apply_package(package, enrollment.package_keys, now_ms)
