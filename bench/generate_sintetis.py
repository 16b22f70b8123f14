"""Generates a Parquet file of synthetic regional observations keyed on real region codes.

Usage: python3 bench/generate_sintetis.py ROWS OUT.parquet

Row i belongs to desa i mod 192 (every desa and kelurahan of Purwakarta, with its kecamatan),
year 2015 + i mod 12, and a value derived from i, so the same ROWS give the same data. Written
by DuckDB, sorted by id.
"""

import sys

import duckdb

from wilayah import purwakarta_desa


def main() -> None:
    rows, out = int(sys.argv[1]), sys.argv[2]
    desa = purwakarta_desa()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE TABLE desa (n INTEGER, kode_wilayah VARCHAR, kode_kecamatan VARCHAR)")
    con.executemany(
        "INSERT INTO desa VALUES (?, ?, ?)",
        [(n, d["kode"], d["parent_kode"]) for n, d in enumerate(desa)],
    )
    con.execute(
        f"""
        COPY (
            SELECT i AS id, d.kode_wilayah, d.kode_kecamatan,
                   CAST(2015 + i % 12 AS BIGINT) AS tahun,
                   CAST((i * 7919) % 1000003 AS DOUBLE) / 100 AS nilai
            FROM range(1, {rows} + 1) r(i) JOIN desa d ON d.n = i % {len(desa)}
            ORDER BY i
        ) TO '{out}' (FORMAT parquet, ROW_GROUP_SIZE 122880)
        """
    )


if __name__ == "__main__":
    main()
