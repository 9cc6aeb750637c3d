"""Key files: the one place farebox.protocol touches the file system.

Agent and server both keep a private key on disk (the device key, the package key), so
saving and loading it lives with the key type rather than twice in the parts. A key file
is PKCS#8 PEM, created with mode 0600 and never readable by group or others; a file that
is, is refused as ssh refuses an unprotected key. (`SigningKey.generate` is, likewise, the
package's one use of the system's randomness.)
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from farebox.protocol.errors import LocalProtocolError
from farebox.protocol.keys import SigningKey


class KeyFileError(LocalProtocolError):
    """A key file that is missing, unreadable, unprotected, or not a key."""


def save_key(path: Path, key: SigningKey) -> None:
    """Write `key` to `path` (mode 0600) atomically; an existing file is never overwritten."""
    # A name of its own per call, so two processes saving at once never share a file;
    # link() then makes the key appear whole or not at all, and refuses to replace one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key.to_pem())
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
        _sync_directory(path.parent)
    except FileExistsError:
        raise KeyFileError(f"{path} exists already; remove it to make a new key") from None
    except OSError as error:
        raise KeyFileError(f"cannot write key file {path}: {error.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_key(path: Path) -> SigningKey:
    """Read the key at `path`, refusing a file that group or others may read."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"{path} is readable by others (mode {mode & 0o777:o}); chmod 600")
        pem = path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read key file {path}: {error.strerror}") from None
    try:
        return SigningKey.from_pem(pem)
    except LocalProtocolError as error:
        raise KeyFileError(f"{path}: {error}") from None
