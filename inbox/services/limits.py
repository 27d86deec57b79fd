"""What fits a column: read from the model itself, so a length is written down once.

Services check every text a person, a form, the API or a webhook sends into a length-limited
column before writing it: too long is a 422 naming the field, never a database error (PostgreSQL
refuses it; SQLite would quietly keep it). Text we compose ourselves is clipped to fit instead.
"""

from __future__ import annotations

from tortoise.models import Model


def max_length(model: type[Model], column: str) -> int:
    length = getattr(model._meta.fields_map[column], "max_length", None)
    if not isinstance(length, int):
        raise TypeError(f"{model.__name__}.{column} has no maximum length.")
    return length


def fits(value: str | None, model: type[Model], column: str) -> bool:
    return value is None or len(value) <= max_length(model, column)


def too_long(value: str, limit: int) -> str:
    return f"Keep it to {limit} characters; this has {len(value)}."


def check_fits(
    errors: dict[str, str], field: str, value: str | None, model: type[Model], column: str | None = None
) -> None:
    """Names `field` in `errors` when `value` is longer than `model.column` (default: `field`) holds.
    A field that already has an error keeps it."""
    if value is None or field in errors:
        return
    limit = max_length(model, column or field)
    if len(value) > limit:
        errors[field] = too_long(value, limit)


def clip(value: str, model: type[Model], column: str) -> str:
    """Our own words (a note's author, a reason) cut to what the column holds, marked with an ellipsis."""
    limit = max_length(model, column)
    return value if len(value) <= limit else value[: limit - 1] + "…"
