"""edgefleet's own exception hierarchy.

Every error a user can cause is one of these, raised ``from`` the library error that caused it and
naming the step that failed. The CLI maps each class to an exit code (see ``edgefleet.cli``).
"""

from __future__ import annotations


class EdgefleetError(Exception):
    """Base class of every error edgefleet raises on purpose."""

    exit_code = 1


class ConfigError(EdgefleetError):
    """A recipe, pass parameter or command-line option is wrong (unknown, ill-typed or missing)."""

    exit_code = 2


class ModelError(EdgefleetError):
    """The model cannot be loaded, built or run (a factory that raises, bad weights, ...)."""

    exit_code = 3


class UnsupportedOpError(ModelError):
    """The model uses an operation outside edgefleet's closed op set."""


class DataError(EdgefleetError):
    """Input data has the wrong shape or dtype, is empty, or holds NaN/inf."""

    exit_code = 4


class BundleError(EdgefleetError):
    """A bundle is malformed: bad manifest, unknown schema version, hash mismatch, truncated file."""

    exit_code = 5


class RuntimeBackendError(EdgefleetError):
    """A runtime backend is missing, cannot load an artifact, or failed while running it."""

    exit_code = 6


class BackendUnavailable(RuntimeBackendError):
    """The backend's library is not installed on this machine (the message names the extra)."""


class ParityError(EdgefleetError):
    """An artifact's outputs differ from the integer reference beyond the stated tolerance."""

    exit_code = 7


class BudgetError(EdgefleetError):
    """The compression pipeline could not meet the accuracy budget; the message lists every attempt."""

    exit_code = 8
