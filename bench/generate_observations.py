"""Generates a large CSV of statistic observations in Open Data Jabar's long format.

Usage: python3 bench/generate_observations.py ROWS OUT.csv

Fixed seed: the same ROWS give the same bytes. Rows look like real exports: every desa and
kelurahan of Purwakarta (codes from hub/reference/wilayah_3214.csv), a handful of indicators
with units, years 2015-2026, integer and decimal values.
"""

import csv
import random
import sys
from pathlib import Path

from wilayah import purwakarta_desa

INDICATORS = [
    ("jumlah_penduduk", "JIWA"),
    ("jumlah_kk", "KK"),
    ("luas_wilayah", "KM2"),
    ("angka_partisipasi_sekolah", "PERSEN"),
    ("jumlah_posyandu", "UNIT"),
    ("panjang_jalan_desa", "KM"),
]


def main() -> None:
    rows, out = int(sys.argv[1]), Path(sys.argv[2])
    desa = purwakarta_desa()
    rng = random.Random(3214)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "kode_wilayah", "nama_wilayah", "indikator", "nilai", "satuan", "tahun"])
        for i in range(1, rows + 1):
            place = desa[rng.randrange(len(desa))]
            indicator, unit = INDICATORS[rng.randrange(len(INDICATORS))]
            value = rng.randrange(0, 20000) if unit in ("JIWA", "KK", "UNIT") else round(rng.uniform(0, 100), 2)
            writer.writerow([i, place["kode"], place["nama"], indicator, value, unit, 2015 + rng.randrange(12)])


if __name__ == "__main__":
    main()
