"""`ticket issue`: its handler run directly, and every ticket it prints verified."""

from __future__ import annotations

import argparse
import io
import struct
import time
from pathlib import Path

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from farebox.protocol.keyfile import load_key, save_key
from farebox.protocol.keys import SigningKey
from farebox.protocol.tickets import ticket
from farebox.protocol.tickets.issuers import IssuerKey, IssuerKeySet
from farebox.server.errors import ConfigurationError
from farebox.server.ticket_commands import QR_ERROR, QR_SCALE, add_ticket_commands

ISSUE = ("ticket", "issue", "--product", "single", "--category", "adult", "--issuer", "city")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="farebox-server")
    add_ticket_commands(parser.add_subparsers(required=True))
    return parser.parse_args(argv)


def run(*argv: str) -> str:
    """The handler's output for `argv`, which must be one line: the ticket text."""
    args = parse(*argv)
    out = io.StringIO()
    assert args.run(args, out) == 0
    text, newline, rest = out.getvalue().partition("\n")
    assert (newline, rest) == ("\n", "")
    return text


def keys_for(path: Path, kid: bytes | None = None) -> IssuerKeySet:
    """The key set a validator would hold for the key file at `path`."""
    public = load_key(path).verify_key
    key = IssuerKey.of(
        Ed25519PublicKey.from_public_bytes(public.raw),
        kid=public.key_id if kid is None else kid,
        issuer="city",
        valid_from=0,
    )
    return IssuerKeySet((key,))


def test_a_new_key_signs_a_ticket_that_verifies_for_ninety_minutes(tmp_path: Path) -> None:
    path = tmp_path / "issuer.pem"
    before = int(time.time())
    text = run(*ISSUE, "--valid-minutes", "90", "--new-key", str(path))
    after = int(time.time())
    assert path.stat().st_mode & 0o777 == 0o600
    held = ticket.verify(text, keys_for(path), after)
    assert (held.issuer, held.product, held.category, held.uses) == ("city", "single", "adult", 1)
    assert before <= held.issued_at == held.valid_from <= after
    assert held.valid_until == held.valid_from + 90 * 60
    assert len(held.ticket_id) == 16


def test_an_existing_key_file_signs_under_the_kid_given(tmp_path: Path) -> None:
    path = tmp_path / "issuer.pem"
    save_key(path, SigningKey.generate())
    argv = (*ISSUE, "--uses", "3", "--kid", "0a0b0c0d", "--key", str(path))
    first, second = run(*argv), run(*argv)
    assert ticket.decode(first).kid == bytes.fromhex("0a0b0c0d")
    keys = keys_for(path, bytes.fromhex("0a0b0c0d"))
    now = int(time.time())
    one, two = ticket.verify(first, keys, now), ticket.verify(second, keys, now)
    assert one.uses == two.uses == 3
    assert one.ticket_id != two.ticket_id


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_writes_the_qr_code_of_the_printed_text(tmp_path: Path) -> None:
    png = tmp_path / "ticket.png"
    text = run(*ISSUE, "--new-key", str(tmp_path / "k.pem"), "--png", str(png))
    qr = segno.make_qr(text, error=QR_ERROR, mode="alphanumeric")
    assert qr.mode == "alphanumeric"
    assert qr.version in range(1, 12)
    assert png_size(png) == qr.symbol_size(scale=QR_SCALE)


def test_key_file_problems_are_configuration_errors(tmp_path: Path) -> None:
    existing = tmp_path / "issuer.pem"
    save_key(existing, SigningKey.generate())
    with pytest.raises(ConfigurationError, match="exists already"):
        run(*ISSUE, "--new-key", str(existing))
    with pytest.raises(ConfigurationError, match="cannot read"):
        run(*ISSUE, "--key", str(tmp_path / "missing.pem"))
    existing.chmod(0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        run(*ISSUE, "--key", str(existing))


def test_an_unwritable_png_path_is_a_configuration_error(tmp_path: Path) -> None:
    png = tmp_path / "no-such-directory" / "ticket.png"
    with pytest.raises(ConfigurationError, match="cannot write"):
        run(*ISSUE, "--new-key", str(tmp_path / "k.pem"), "--png", str(png))


@pytest.mark.parametrize(
    "argv",
    [
        (*ISSUE,),  # no key
        (*ISSUE, "--key", "a.pem", "--new-key", "b.pem"),
        (*ISSUE, "--key", "a.pem", "--kid", "zz"),
        (*ISSUE, "--key", "a.pem", "--kid", "00" * 17),
        ("ticket", "issue", "--category", "adult", "--issuer", "city", "--key", "a.pem"),
    ],
)
def test_bad_options_are_refused_by_the_parser(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == 2
