"""Failures a person can act on, raised by services and turned into HTTP answers by routes."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationFailed(ServiceError):
    """The input itself is wrong (HTTP 422)."""

    status = 422


class Refused(ServiceError):
    """The input is fine but a rule forbids it, e.g. no consent to text (HTTP 409)."""

    status = 409


class NotFound(ServiceError):
    status = 404


class Forbidden(ServiceError):
    status = 403


def require(fields: dict[str, str]) -> None:
    """Raise one ValidationFailed naming every bad field at once."""
    if fields:
        raise ValidationFailed("Please correct the highlighted fields.", fields)
