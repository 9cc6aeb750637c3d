"""NFC cards through nfcpy: the only module in farebox that imports `nfc`.

One reader thread owns `nfc.ContactlessFrontend(path)`: `usb`, `usb:054c:06c3`,
`tty:USB0:pn532`, `tty:AMA0:pn532` for real readers, `udp:127.0.0.1:PORT` for the
simulated card. One tap goes:

1. sense the configured technologies once (nfcpy never beeps here: we do not call its
   `connect()`, whose default turns on the buzzer);
2. sense again, the other technologies first and the card's own last: a different card
   answering means two cards are in the field, and the tap is refused as a clash;
3. activate the card, read its UID, and its farebox payload: the answer to SELECT of the
   farebox application (Type 4) or else the farebox NDEF record;
4. hand over the Presentation, poll until the card leaves, hand over CardRemoved.

A reader's own anticollision usually settles two cards of one technology on the same
card every time, so step 2 catches such a clash only when the other card wins a later
round; two cards of different technologies are always caught.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any, TypeAlias

import nfc
import nfc.clf
import nfc.tag

from farebox.agent.presentation import CardRemoved, CardTechnology, Media, Presentation
from farebox.agent.readers.base import Backoff, HealthState, ThreadedReader, read_time

log = logging.getLogger(__name__)

FAREBOX_AID = bytes.fromhex("F0464152454258")  # proprietary AID: F0 + "FAREBX"
FAREBOX_NDEF_TYPE = "urn:nfc:ext:farebox.org:ticket"
DEFAULT_TARGETS = ("106A", "212F")  # Type 2 and 4A; FeliCa. Add "106B" for Type 4B.

_TECHNOLOGY = {
    "Type2Tag": CardTechnology.TYPE2,
    "Type3Tag": CardTechnology.TYPE3,
    "Type4Tag": CardTechnology.TYPE4,
}
_READ_ERRORS = (nfc.tag.TagCommandError, nfc.clf.CommunicationError)
# nfcpy ships no types: its targets and tags are opaque values here.
Target: TypeAlias = Any


class NfcReader(ThreadedReader):
    """An nfcpy contactless reader; each tap becomes a card Presentation."""

    def __init__(
        self,
        reader_id: str,
        path: str,
        *,
        targets: tuple[str, ...] = DEFAULT_TARGETS,
        poll_interval_s: float = 0.05,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(reader_id, backoff)
        self.path = path
        self.targets = targets
        self.poll_interval_s = poll_interval_s
        self._clf: nfc.ContactlessFrontend | None = None

    def _session(self) -> None:
        clf = nfc.ContactlessFrontend(self.path)
        self._clf = clf
        try:
            self._set_health(HealthState.READY, f"reader {clf.device} on {self.path}")
            while not self._stopping.is_set():
                self._tap(clf)
        finally:
            self._clf = None
            clf.close()

    def _sense(self, clf: nfc.ContactlessFrontend, *brty: str) -> Target:
        target = clf.sense(*(nfc.clf.RemoteTarget(b) for b in brty), iterations=1)
        if clf.device is None:
            raise OSError(errno.ENODEV, f"reader on {self.path} went away")
        return target

    def _tap(self, clf: nfc.ContactlessFrontend) -> None:
        first = self._sense(clf, *self.targets)
        if first is None:
            self._stopping.wait(self.poll_interval_s)
            return
        others = [brty for brty in self.targets if brty != first.brty]
        second = self._sense(clf, *others, first.brty)
        if second is None:  # gone already: a graze, not a tap
            return
        if _identity(second) != _identity(first):
            self._clash(clf, first)
            return
        tag = nfc.tag.activate(clf, second)
        if tag is None:
            log.debug("reader %s: activation failed for %s", self.reader_id, second)
            return
        uid = bytes(tag.identifier)
        self._deliver(
            Presentation(
                reader_id=self.reader_id,
                media=Media.NFC,
                read_at=read_time(),
                uid=uid,
                technology=_TECHNOLOGY.get(tag.type, CardTechnology.TYPE4),
                payload=self._payload(tag),
            )
        )
        while not self._stopping.is_set() and tag.is_present:
            self._stopping.wait(self.poll_interval_s)
        self._deliver(CardRemoved(self.reader_id, uid, read_time()))

    def _clash(self, clf: nfc.ContactlessFrontend, first: Target) -> None:
        uid = _identity(first)
        self._deliver(
            Presentation(
                reader_id=self.reader_id,
                media=Media.NFC,
                read_at=read_time(),
                uid=uid,
                technology=_technology_of(first),
                clash=True,
            )
        )
        # Nothing is read until the field is clear, so the clash is one refusal, not many.
        while not self._stopping.is_set() and self._sense(clf, *self.targets) is not None:
            self._stopping.wait(self.poll_interval_s)
        self._deliver(CardRemoved(self.reader_id, uid, read_time()))

    def _payload(self, tag: Target) -> bytes | None:
        try:
            if tag.type == "Type4Tag":
                answer = bytes(tag.send_apdu(0, 0xA4, 0x04, 0x00, FAREBOX_AID, check_status=False))
                if answer[-2:] == b"\x90\x00":
                    return answer[:-2]
            if tag.ndef is not None:
                for record in tag.ndef.records:
                    if record.type == FAREBOX_NDEF_TYPE:
                        return bytes(record.data)
        except _READ_ERRORS as error:
            # The UID alone still identifies the card; the decision sees no payload.
            log.warning("reader %s: payload not read: %s", self.reader_id, error)
        return None

    def _wake(self) -> None:
        # nfcpy's UDP driver waits up to 1 s for each technology that does not answer;
        # an RFOFF datagram to its own socket ends each such wait at once.
        clf = self._clf
        sock = getattr(getattr(clf, "device", None), "socket", None)
        if not isinstance(sock, socket.socket):
            return
        try:
            port = sock.getsockname()[1]
            for _ in self.targets:
                sock.sendto(b"RFOFF", ("127.0.0.1", port))
        except OSError:
            log.debug("reader %s: UDP reader socket already closed", self.reader_id)

    def _explain(self, error: BaseException) -> str:
        if isinstance(error, FileNotFoundError) and self.path.startswith("usb"):
            return "libusb not found: install libusb-1.0-0 (apt install libusb-1.0-0)"
        code = getattr(error, "errno", None)
        if code == errno.EACCES:
            return (
                f"permission denied on {self.path}: install the udev rule that "
                "'python -m nfc' prints, then replug the reader"
            )
        if code == errno.EBUSY:
            return f"{self.path} is busy: blacklist the port100 / pn533_usb kernel modules"
        if code == errno.ENODEV:
            return f"no reader on {self.path}: unplugged, or the path is wrong"
        return f"reader on {self.path} failed: {error}"


def _identity(target: Target) -> bytes:
    """What tells two cards apart: NFCID1 (A), IDm (F) or PUPI (B)."""
    for attribute, part in (("sdd_res", slice(None)), ("sensf_res", slice(1, 9))):
        value = getattr(target, attribute, None)
        if value:
            return bytes(value[part])
    return bytes(getattr(target, "sensb_res", b"")[1:5])


def _technology_of(target: Target) -> CardTechnology:
    if getattr(target, "sensf_res", None):
        return CardTechnology.TYPE3
    sel_res = getattr(target, "sel_res", None)
    if sel_res and sel_res[0] & 0x20:
        return CardTechnology.TYPE4
    return CardTechnology.TYPE4 if getattr(target, "sensb_res", None) else CardTechnology.TYPE2
