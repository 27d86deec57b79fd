"""The CSV import's samples (docs/import) and the upload page's forms, for the import tests."""

from __future__ import annotations

import re

from inbox.models import Staff
from inbox.services.import_files import CsvFile
from inbox.services.staff import create_staff

from .paths import REPO

SAMPLES = REPO / "docs" / "import"
SAMPLE_NAMES = ("clients.csv", "cases.csv", "assignments.csv", "events.csv")


def samples() -> list[CsvFile]:
    return [CsvFile(name, (SAMPLES / name).read_bytes()) for name in SAMPLE_NAMES]


async def sample_staff() -> Staff:
    """The staff the sample assignments name; the admin is who imports."""
    await create_staff(email="alice@example.org", name="Alice Advocate", role="advocate", password="x" * 12)
    admin, _ = await create_staff(email="ada@example.org", name="Ada Admin", role="admin", password="x" * 12)
    return admin


def uploads(*files: CsvFile) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f.name, f.data, "text/csv")) for f in files]


def job_id_of(html: str) -> str:
    match = re.search(r'hx-get="/admin/import/([\w-]+)/progress"', html)
    assert match, html
    return match.group(1)
