"""The sync server's refusals, each with the stable code the HTTP API answers with.

They extend farebox.server's error tree (see farebox.server.errors):

    SyncError                   a device or operator request refused; `code` and `status`
                                say how
    ├── EnrollmentError         an enrollment token unknown, used or expired (403)
    ├── DeviceError             an operator named a device that does not exist (404)
    ├── AuthenticationError     a device request not authenticated (401): its `code` is
    │                           unsigned, bad_signature, unknown_device, revoked, stale
    │                           or replay
    ├── MalformedRequestError   a body that does not decode (400: malformed or
    │                           unsupported_version)
    ├── NoPackageError          no package of that kind is published (404)
    ├── StoplistAheadError      a device holds a stoplist the server did not publish and
    │                           the server will not renumber its own past it now (409)
    ├── OperatorAuthError       an operator request without the operator token (401), or
    │                           any while no token is configured
    ├── AccountNotFoundError    an operator asked for an account that does not exist (404)
    └── TariffRefusedError      a tariff to publish that does not load or whose fare days
                                differ from the ledger's (422)
"""

from __future__ import annotations

from farebox.server.errors import ServerError


class SyncError(ServerError):
    code = "sync_error"
    status = 400
    challenge: str | None = None
    """The `WWW-Authenticate` value a 401 of this kind answers with (RFC 9110 11.6.1)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class EnrollmentError(SyncError):
    code = "enrollment_token"
    status = 403


class DeviceError(SyncError):
    code = "unknown_device"
    status = 404


class AuthenticationError(SyncError):
    code = "unauthenticated"
    status = 401


class MalformedRequestError(SyncError):
    code = "malformed"
    status = 400


class NoPackageError(SyncError):
    code = "no_package"
    status = 404


class StoplistAheadError(SyncError):
    code = "stoplist_ahead"
    status = 409


class OperatorAuthError(SyncError):
    code = "operator_token"
    status = 401
    challenge = 'Bearer realm="farebox operator API"'


class AccountNotFoundError(SyncError):
    code = "unknown_account"
    status = 404


class TariffRefusedError(SyncError):
    code = "invalid_tariff"
    status = 422
