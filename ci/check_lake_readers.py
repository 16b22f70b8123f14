"""Reads a Simpul lake with tools that are not Simpul, to show the Delta tables stay open.

Usage: python3 ci/check_lake_readers.py DATA_DIR

.ci/run prepares DATA_DIR: `simpul serve` once (ref.wilayah), then stats.garis_kemiskinan
ingested three times: append 81 rows (v1), append 81 (v2), overwrite with 81 rows and one
malformed line (v3). This script checks them with the `deltalake` Python package (log,
versions, time travel) and `pyarrow` (the Parquet data files read directly).
"""

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable


def check_conservative_protocol(table: DeltaTable, name: str) -> None:
    protocol = table.protocol()
    assert protocol.min_reader_version == 1, f"{name}: reader version {protocol.min_reader_version}"
    # Writer 4: the change data feed (merges write change files for the bus's change feed).
    assert protocol.min_writer_version <= 4, f"{name}: writer version {protocol.min_writer_version}"
    for field in table.schema().fields:
        assert "timestamp_ntz" not in str(field.type), f"{name}.{field.name} uses timestampNtz"


def main() -> None:
    lake = Path(sys.argv[1]) / "lake"

    wilayah = DeltaTable(str(lake / "ref" / "wilayah"))
    check_conservative_protocol(wilayah, "ref.wilayah")
    rows = wilayah.to_pyarrow_table()
    assert rows.num_rows == 210, rows.num_rows
    levels = sorted(set(rows.column("level").to_pylist()))
    assert levels == ["desa", "kabupaten", "kecamatan", "kelurahan"], levels
    files = [Path(uri.removeprefix("file://")) for uri in wilayah.file_uris()]
    assert sum(pq.read_table(str(f)).num_rows for f in files) == 210, "raw Parquet files"

    gk = DeltaTable(str(lake / "stats" / "garis_kemiskinan"))
    check_conservative_protocol(gk, "stats.garis_kemiskinan")
    assert gk.version() == 3, gk.version()
    assert gk.to_pyarrow_table().num_rows == 81
    for version, expected in [(2, 162), (1, 81), (0, 0)]:
        gk.load_as_version(version)
        got = gk.to_pyarrow_table().num_rows
        assert got == expected, f"version {version}: {got} rows, expected {expected}"

    rejects = DeltaTable(str(lake / "stats" / "garis_kemiskinan__rejects")).to_pyarrow_table()
    assert rejects.column("reason").to_pylist() == ["expected 8 fields, found 3"], rejects
    print("the lake is readable by deltalake (Python) and pyarrow: ok")


if __name__ == "__main__":
    main()
    # deltalake's Rust threads can abort the interpreter while it shuts down ("terminate called
    # without an active exception", delta-io/delta-rs#2184) after every check has passed, so
    # leave without running the finalizers. A failed check raised above and exits non-zero.
    sys.stdout.flush()
    os._exit(0)
