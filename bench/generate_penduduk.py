"""Generates a large CSV of residents (the `penduduk` schema), 1% of rows invalid.

Usage: python3 bench/generate_penduduk.py ROWS OUT.csv

Fixed seed: the same ROWS give the same bytes. About 200 bytes a row, so 5,000,000 rows make
about 1 GB. NIKs are unique within any 16,384-row batch (the serial follows the row number);
women's NIKs carry day + 40, as the real ones do; every kode_wilayah is a real Purwakarta
desa or kelurahan.
"""

import csv
import random
import sys
from pathlib import Path

from wilayah import purwakarta_desa

GIVEN = ["Siti", "Asep", "Dewi", "Ujang", "Nur", "Ahmad", "Rina", "Dedi", "Euis", "Agus", "Lilis", "Cecep", "Yayan", "Neng"]
FAMILY = ["Aminah", "Saepudin", "Lestari", "Hidayat", "Kurniasih", "Rahmat", "Suryani", "Gunawan", "Nurhayati", "Permana"]
PLACES = ["Purwakarta", "Bandung", "Karawang", "Subang", "Cianjur", "Jakarta", "Bogor", "Bekasi"]
STREETS = ["Raya Sadang", "Veteran", "Ipik Gandamanah", "Kusumaatmaja", "Pramuka", "Siliwangi", "Basuki Rahmat"]


def main() -> None:
    rows, out = int(sys.argv[1]), Path(sys.argv[2])
    desa = purwakarta_desa()
    rng = random.Random(3214)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["nik", "no_kk", "nama", "tempat_lahir", "tanggal_lahir", "jenis_kelamin", "alamat", "rt", "rw",
                         "kode_wilayah", "telepon", "status_hidup"])
        for i in range(rows):
            woman = rng.random() < 0.5
            day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1950, 2015)
            place = desa[rng.randrange(len(desa))]
            kecamatan = place["kode"][6:8]
            nik = f"3214{kecamatan}{day + 40 if woman else day:02d}{month:02d}{year % 100:02d}{i % 9999 + 1:04d}"
            row = [
                nik,
                f"3214{kecamatan}{rng.randrange(10**10):010d}",
                f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}",
                rng.choice(PLACES),
                f"{year}-{month:02d}-{day:02d}",
                "P" if woman else "L",
                f"Jl. {rng.choice(STREETS)} No. {rng.randint(1, 250)}, Kampung {rng.choice(FAMILY)}, Desa {place['nama']}, Kabupaten Purwakarta",
                f"{rng.randint(1, 20):03d}",
                f"{rng.randint(1, 10):03d}",
                place["kode_nodot"] if i % 2 else place["kode"],
                f"08{rng.randint(1, 9)}{rng.randrange(10**9):09d}",
                "true",
            ]
            if i % 100 == 57:
                broken = rng.randrange(5)
                if broken == 0:
                    row[0] = nik[:6] + "35" + nik[8:]
                elif broken == 1:
                    row[4] = "1990-02-30"
                elif broken == 2:
                    row[9] = "32.99.01.2001"
                elif broken == 3:
                    row[10] = "12345"
                else:
                    row[5] = "X"
            writer.writerow(row)


if __name__ == "__main__":
    main()
