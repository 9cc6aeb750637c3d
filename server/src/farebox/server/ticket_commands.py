"""`farebox-server ticket issue`: sign one QR ticket, for tests, demos and a kiosk.

The command needs no store: it reads the issuer's Ed25519 key from a key file (or makes
one), signs a ticket valid from now, and prints its `FB1:` text on stdout, alone on its
line so that a script can take it. `--png` also writes the QR code, in alphanumeric mode
at error correction Q (docs/media.md). Validators accept the ticket once the key set they
hold lists the key's public half under the same kid and issuer.

`add_ticket_commands` sets the handler as `args.run`: called as `args.run(args, out)`, it
is synchronous and takes no ledger, so the command line runs it without opening a store.
A key file or PNG path that cannot be used is a ConfigurationError.
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path
from typing import TextIO, cast

import segno
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farebox.protocol.keyfile import KeyFileError, load_key, save_key
from farebox.protocol.keys import SigningKey
from farebox.protocol.tickets import ticket
from farebox.protocol.tickets.issuers import MAX_KID_BYTES
from farebox.server.errors import ConfigurationError

TICKET_ID_BYTES = 16
QR_ERROR = "q"
QR_SCALE = 4  # pixels a module, with segno's standard quiet zone of 4 modules


def add_ticket_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `ticket` group: `ticket issue`."""
    group = commands.add_parser("ticket", help="signed QR tickets").add_subparsers(required=True)
    description = "sign a QR ticket valid from now and print its text"
    issue = group.add_parser("issue", help=description, description=description)
    issue.add_argument("--product", required=True, help="product name, e.g. single")
    issue.add_argument("--category", required=True, help="rider category, e.g. adult")
    issue.add_argument("--valid-minutes", type=int, default=90, help="from now (default 90)")
    issue.add_argument("--uses", type=int, default=1, help="rides allowed (default 1)")
    issue.add_argument("--issuer", required=True, help="issuer name, as in the key set")
    issue.add_argument(
        "--kid", type=_kid, default=None, help="key id in hex (default: the key's id)"
    )
    key = issue.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", type=Path, help="the issuer's Ed25519 key file (PKCS#8 PEM)")
    key.add_argument("--new-key", type=Path, help="make a new key file here and sign with it")
    issue.add_argument("--png", type=Path, default=None, help="also write the QR code here")
    issue.set_defaults(run=issue_ticket)


def issue_ticket(args: argparse.Namespace, out: TextIO) -> int:
    """Sign one ticket with the key file and print its text; needs no store."""
    key = _signing_key(args.key, args.new_key)
    now = int(time.time())
    value = ticket.Ticket(
        ticket_id=secrets.token_bytes(TICKET_ID_BYTES),
        issuer=args.issuer,
        product=args.product,
        category=args.category,
        uses=args.uses,
        issued_at=now,
        valid_from=now,
        valid_until=now + args.valid_minutes * 60,
    )
    kid = key.key_id if args.kid is None else args.kid
    text = ticket.issue(value, _private_key(key), kid=kid)
    if args.png is not None:
        qr = segno.make_qr(text, error=QR_ERROR, mode="alphanumeric")
        try:
            qr.save(args.png, kind="png", scale=QR_SCALE)
        except OSError as error:
            raise ConfigurationError(f"cannot write {args.png}: {error.strerror}") from None
    print(text, file=out)
    return 0


def _kid(text: str) -> bytes:
    try:
        kid = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex") from None
    if not 1 <= len(kid) <= MAX_KID_BYTES:
        raise argparse.ArgumentTypeError(f"a key id is 1 to {MAX_KID_BYTES} bytes")
    return kid


def _signing_key(path: Path | None, new_path: Path | None) -> SigningKey:
    try:
        if new_path is None:
            return load_key(cast(Path, path))  # argparse requires one of the two
        key = SigningKey.generate()
        save_key(new_path, key)
    except KeyFileError as error:
        raise ConfigurationError(str(error)) from None
    return key


def _private_key(key: SigningKey) -> Ed25519PrivateKey:
    # SigningKey keeps its cryptography key to itself; its PEM is the public way to it, and
    # it holds Ed25519 keys only.
    loaded = serialization.load_pem_private_key(key.to_pem(), password=None)
    return cast(Ed25519PrivateKey, loaded)
