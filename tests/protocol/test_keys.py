from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from farebox.protocol.errors import InvalidValueError, SignatureError
from farebox.protocol.keyfile import KeyFileError, load_key, save_key
from farebox.protocol.keys import SigningKey, VerifyKey


def test_sign_and_verify_with_domain_separation() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"farebox/a\x00", b"message")
    key.verify_key.verify(signature, b"farebox/a\x00", b"message")
    with pytest.raises(SignatureError):
        key.verify_key.verify(signature, b"farebox/b\x00", b"message")
    with pytest.raises(SignatureError):
        SigningKey.generate().verify_key.verify(signature, b"farebox/a\x00", b"message")


def test_key_id_is_eight_bytes_of_the_public_keys_hash() -> None:
    key = SigningKey.from_seed(bytes(range(32)))
    assert len(key.key_id) == 8
    assert VerifyKey(key.verify_key.raw).key_id == key.key_id


def test_bad_public_keys_are_refused() -> None:
    with pytest.raises(InvalidValueError):
        VerifyKey(b"\x01" * 31)


def test_key_file_is_private_and_round_trips(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "device.key"
    save_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path).key_id == key.key_id


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    save_key(path, SigningKey.generate())
    with pytest.raises(KeyFileError, match="exists already"):
        save_key(path, SigningKey.generate())


def test_an_unprotected_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    save_key(path, SigningKey.generate())
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)


def test_a_missing_or_garbled_key_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key(tmp_path / "absent.key")
    garbled = tmp_path / "garbled.key"
    fd = os.open(garbled, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"-----BEGIN PRIVATE KEY-----\nnope\n")
    os.close(fd)
    with pytest.raises(KeyFileError, match="not a PEM"):
        load_key(garbled)
