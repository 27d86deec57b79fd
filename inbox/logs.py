"""Logging for every command: plain lines, or one JSON object per line (INBOX_LOG_FORMAT=json) for the
app and uvicorn's loggers alike.

uvicorn's access log names each request's path; its query string is left out in both formats, because
some carry credentials (a signed attachment link's `signature`, which Twilio fetches).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
# What every LogRecord has (and uvicorn's coloured copy of its message): anything else on a record was passed
# as `extra=` and is written as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One line of JSON per record: time, level, logger, message, then the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class AccessWithoutQuery(logging.Filter):
    """uvicorn.access records: the path without its query string, and the request's parts as fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn logs '%s - "%s %s HTTP/%s" %d' with (client, method, path and query, version, status).
        if isinstance(args, tuple) and len(args) == 5:
            client, method, full_path, version, status = args
            path = str(full_path).split("?", 1)[0]
            record.args = (client, method, path, version, status)
            record.client = client
            record.method = method
            record.path = path
            record.status = status
        return True


def config(log_format: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig dict, also given to uvicorn.run(log_config=…) so that uvicorn keeps it."""
    formatter: dict[str, Any] = {"()": JsonFormatter} if log_format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"access": {"()": AccessWithoutQuery}},
        "formatters": {"inbox": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "inbox", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own handlers are replaced by the root's, so its lines look like everyone else's.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True, "filters": ["access"]},
        },
    }
