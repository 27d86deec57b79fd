"""Reading an import's CSV files: each file's kind from its header row, its rows as text by column.

Nothing here touches the database: inbox.services.importing checks the values and writes them."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    CLIENTS = "clients"
    CASES = "cases"
    ASSIGNMENTS = "assignments"
    EVENTS = "events"


# The order files are imported in: what a row refers to is written before it.
ORDER = (Kind.CLIENTS, Kind.CASES, Kind.ASSIGNMENTS, Kind.EVENTS)

# Every column each kind may have (PRODUCT.md's Import paragraph); a header holding all of a kind's columns
# is that kind. More columns may follow, in any order: they are ignored.
COLUMNS: dict[Kind, tuple[str, ...]] = {
    Kind.CLIENTS: ("external_id", "name", "mobile", "okay_to_text", "preferred_language"),
    Kind.CASES: (
        "external_id",
        "number",
        "title",
        "client_external_id",
        "legal_problem",
        "office",
        "opened_on",
        "closed_on",
    ),
    Kind.ASSIGNMENTS: ("case_external_id", "staff_email", "primary", "start", "end"),
    Kind.EVENTS: ("external_id", "case_external_id", "kind", "title", "starts_at", "place"),
}


@dataclass(frozen=True)
class CsvFile:
    name: str  # as the person named it: the path given, or the uploaded file's name
    data: bytes


@dataclass(frozen=True)
class Row:
    line: int  # the line the row starts on, counting the header as line 1
    values: dict[str, str]  # the kind's columns, stripped of surrounding spaces


@dataclass(frozen=True)
class ParsedFile:
    name: str
    kind: Kind
    rows: list[Row]


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file, or one value of one row: written as `FILE line N, column C: …`."""

    file: str
    line: int | None
    column: str | None
    text: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}"
        if self.column is not None:
            where += f", column {self.column}"
        return f"{where}: {self.text}"


class UnreadableFile(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def kind_of(header: list[str]) -> Kind | None:
    present = set(header)
    return next((kind for kind in ORDER if set(COLUMNS[kind]) <= present), None)


def _unknown_header(name: str, header: list[str]) -> Problem:
    wanted = "; ".join(f"{kind.value}: {','.join(columns)}" for kind, columns in COLUMNS.items())
    shown = ",".join(header) or "(empty)"
    return Problem(
        name, 1, None, f"the header row “{shown}” is not one of an import's files. The headers are — {wanted}."
    )


def parse(file: CsvFile) -> ParsedFile:
    """The file's kind and rows; UTF-8 with or without a byte order mark (Excel writes one)."""
    try:
        text = file.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = file.data[: exc.start].count(b"\n") + 1
        raise UnreadableFile(
            Problem(file.name, line, None, "this is not UTF-8 text. Save the file as “CSV UTF-8” and try again.")
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        kind = kind_of(header)
        if kind is None:
            raise UnreadableFile(_unknown_header(file.name, header))
        positions = {column: header.index(column) for column in COLUMNS[kind]}
        rows: list[Row] = []
        start = reader.line_num + 1
        for record in reader:
            if any(cell.strip() for cell in record):  # blank lines (a trailing one, above all) are no rows
                rows.append(Row(start, {c: record[i].strip() if i < len(record) else "" for c, i in positions.items()}))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UnreadableFile(Problem(file.name, reader.line_num, None, f"this is not valid CSV ({exc}).")) from None
    return ParsedFile(file.name, kind, rows)
