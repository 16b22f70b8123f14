"""The desa and kelurahan of Purwakarta, for the benchmark data generators."""

import csv
from pathlib import Path

REFERENCE = Path(__file__).resolve().parent.parent / "hub" / "reference" / "wilayah_3214.csv"


def purwakarta_desa() -> list[dict[str, str]]:
    """Every desa and kelurahan row of hub/reference/wilayah_3214.csv."""
    with REFERENCE.open(encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["level"] in ("desa", "kelurahan")]
