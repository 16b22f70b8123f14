"""Talks to Simpul's PostgreSQL endpoint with psycopg, the driver Python analysts use.

Usage: python3 ci/check_psycopg.py POSTGRES_URL ADMIN_KEY

POSTGRES_URL is the `postgres:` line `simpul serve` printed (postgresql://HOST:PORT). Checks a
parameterized query (psycopg binds server-side, through the extended protocol), typed results,
a prepared statement reused, the read-only SQLSTATE, and a refused login.
"""

import sys

import psycopg
from psycopg import errors


def main() -> None:
    address, key = sys.argv[1].removeprefix("postgresql://"), sys.argv[2]
    url = f"postgresql://admin:{key}@{address}/simpul"
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select nama, lat from ref.wilayah where kode = %s", ("32.14.01",)
        ).fetchone()
        assert row[0] == "Purwakarta", row
        assert isinstance(row[1], float) and -7 < row[1] < -6, row
        counts = [
            conn.execute(
                "select count(*) from ref.wilayah where parent_kode = %s and lat < %s",
                (kecamatan, -6.0),
                prepare=True,
            ).fetchone()[0]
            for kecamatan in ("32.14.01", "32.14.02", "32.14.03")
        ]
        assert all(n > 0 for n in counts), counts
        years = conn.execute(
            "select tahun, besaran_upah_minimum from stats.upah_minimum "
            "where kode_kabupaten_kota = %s and tahun >= %s order by tahun",
            ("3214", 2020),
        ).fetchall()
        assert [y for y, _ in years] == [2020, 2021, 2022, 2023], years
        try:
            conn.execute("delete from ref.wilayah where kode = %s", ("32.14",))
            raise AssertionError("a delete was accepted")
        except errors.ReadOnlySqlTransaction as e:
            assert "read-only" in str(e), e
    try:
        psycopg.connect(f"postgresql://admin:simpul_wrong@{address}/simpul").close()
        raise AssertionError("a wrong key logged in")
    except psycopg.OperationalError as e:
        assert "password authentication failed" in str(e), e
    print(f"psycopg {psycopg.__version__}: parameters, prepared statements, types and errors ok")


if __name__ == "__main__":
    main()
