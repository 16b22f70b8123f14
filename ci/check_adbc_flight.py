"""Talks to Simpul's Flight SQL endpoint with ADBC, the driver Arrow-native tools use.

Usage: python3 ci/check_adbc_flight.py FLIGHT_URL ADMIN_KEY

FLIGHT_URL is the `flight:` line `simpul serve` printed (grpc://HOST:PORT). ADBC prepares
every statement, so this checks prepared statements with a bound parameter, Arrow results and
the catalog metadata ADBC reads (get_objects).
"""

import sys

import adbc_driver_flightsql.dbapi as flightsql
from adbc_driver_flightsql import DatabaseOptions


def main() -> None:
    url, key = sys.argv[1], sys.argv[2]
    with flightsql.connect(
        url, db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {key}"}
    ) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "select kode, nama from ref.wilayah where parent_kode = $1 order by kode",
                parameters=("32.14.01",),
            )
            table = cur.fetch_arrow_table()
            assert table.num_rows > 5, table
            assert all(k.startswith("32.14.01.") for k in table.column("kode").to_pylist())
            cur.execute("select count(*) as n from ref.wilayah")
            assert cur.fetchone()[0] == 210
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        schemas = {s["db_schema_name"] for c in objects for s in c["catalog_db_schemas"]}
        assert {"ref", "stats"} <= schemas, schemas
    print("adbc-driver-flightsql: prepared statements, parameters and get_objects ok")


if __name__ == "__main__":
    main()
