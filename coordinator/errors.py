"""The coordinator's domain errors. Servicers map each class to one gRPC / Connect status code."""

from __future__ import annotations

from edgefleet._errors import ConfigError, DataError, EdgefleetError

__all__ = ["CoordinatorError", "InvalidRequest", "Unauthenticated", "PermissionDenied", "NotFound",
           "Conflict", "PolicyError", "StoreError", "ResourceExhausted", "MissingCredentials"]


class CoordinatorError(EdgefleetError):
    """Base class of the coordinator's errors."""

    exit_code = 9
    code = "internal"


class InvalidRequest(CoordinatorError, DataError):
    """A request (e.g. a telemetry report) does not validate; nothing of it was stored."""

    code = "invalid_argument"


class Unauthenticated(CoordinatorError):
    """Missing, unknown or used-up token."""

    code = "unauthenticated"


class MissingCredentials(Unauthenticated):
    """No token at all: a misconfigured client, not a guess (not counted by the failed-auth throttle)."""


class PermissionDenied(CoordinatorError):
    """An authenticated caller asked for something that is not its own."""

    code = "permission_denied"


class ResourceExhausted(CoordinatorError):
    """A per-client limit was hit (failed authentications, request rate, open watches); retry later."""

    code = "resource_exhausted"


class NotFound(CoordinatorError):
    """Unknown bundle, version, device or cohort."""

    code = "not_found"


class Conflict(CoordinatorError):
    """The request contradicts stored state (e.g. a second bundle under an existing version)."""

    code = "failed_precondition"


class PolicyError(CoordinatorError, ConfigError):
    """The policy rules file is malformed; the message names the rule and key."""

    exit_code = 2
    code = "invalid_argument"


class StoreError(CoordinatorError):
    """The store could not be reached or refused a write (the request is not acknowledged)."""

    code = "unavailable"


class RateLimited(CoordinatorError):
    """A caller went past its rate limit; retry later (or answer locally)."""

    code = "resource_exhausted"
