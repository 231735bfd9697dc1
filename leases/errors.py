"""Error families of the domain.

`DomainError` and its subclasses are refusals a user can act on: each carries the field it is
about (when there is one) and a message meant to be shown as is. Infrastructure failures are
`TemporaryError` (worth retrying) and `PermanentError` (not). Anything may import this module
through leases.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; the message is shown to the user."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidTransition(DomainError):
    """A lease state change the lifecycle does not allow."""


class NotAuthorised(DomainError):
    """The actor may not do this (not an approver, own request, not an admin)."""


class AlreadyDecided(DomainError):
    """The request was decided already; nothing changed."""


class CapacityExceeded(DomainError):
    """Reserving would take a pool past its capacity."""


class NamespaceTaken(DomainError):
    """Another live lease holds this namespace name."""


class NotFound(DomainError):
    """No such lease, namespace or object."""


class InfrastructureError(Exception):
    """A failure talking to something outside the domain (cluster, broker, Slack)."""


class TemporaryError(InfrastructureError):
    """Worth retrying after `delay` seconds (None: use the policy's backoff)."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(InfrastructureError):
    """Retrying cannot help; fail the step and compensate."""
