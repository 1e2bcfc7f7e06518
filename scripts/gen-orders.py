#!/usr/bin/env python3
"""Writes a deterministic orders file for benchmarks: ROWS rows of 12 columns with quoted fields
holding commas and quotes, unicode, nulls, timestamps and decimals (about 109 bytes a row).

usage: gen-orders.py ROWS OUT.csv [OUT.ndjson]
"""
import csv
import json
import random
import sys

CITIES = ["Rotterdam", "Köln", "São Paulo", "Zürich", "東京", "Łódź", "Reykjavík", "Austin",
          "Montréal", "Malmö", "Kraków", "Lyon"]
NAMES = ["Van der Berg Logistics", "Müller & Söhne", "Silva, Ana", "O'Neill Outfitters",
         "株式会社サクラ", "Nørgaard ApS", "Smith \"Bulk\" Ltd", "Dvořák s.r.o.", "Ødegaard AS",
         "Garcia, Luis"]
STATUSES = ["completed", "pending", "cancelled", "refunded", "shipped"]
CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF"]
NOTES = ["", "", "", "Leave at door", "Deliver to dock 4, ask for \"Jan\"",
         "Gift wrap; card: \"Happy birthday!\"", "Call before, 9–17h", "Fragile, glass"]
COLUMNS = ["order_id", "customer_id", "customer_name", "status", "currency", "total", "tax",
           "items", "created_at", "updated_at", "ship_city", "note"]


def rows(count):
    rng = random.Random(42)
    for i in range(count):
        created = 1722470400 + i * 7 + rng.randrange(7)
        updated = created + rng.randrange(86400)
        total = rng.randrange(100, 500000)
        note = rng.choice(NOTES)
        yield [
            f"SO-{1000000 + i}",
            f"C-{rng.randrange(100000):05d}",
            rng.choice(NAMES),
            rng.choice(STATUSES),
            rng.choice(CURRENCIES),
            f"{total // 100}.{total % 100:02d}",
            f"{total * 21 // 10000}.{total * 21 // 100 % 100:02d}",
            str(rng.randrange(1, 40)),
            iso(created),
            iso(updated),
            rng.choice(CITIES),
            note or None,
        ]


def iso(epoch):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def main():
    count, csv_path = int(sys.argv[1]), sys.argv[2]
    ndjson_path = sys.argv[3] if len(sys.argv) > 3 else None
    with open(csv_path, "w", newline="", encoding="utf-8") as out:
        nd = open(ndjson_path, "w", encoding="utf-8") if ndjson_path else None
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows(count):
            writer.writerow(["" if v is None else v for v in row])
            if nd:
                record = dict(zip(COLUMNS, row))
                # JSON from an API carries numbers as numbers.
                record["total"], record["tax"] = float(record["total"]), float(record["tax"])
                record["items"] = int(record["items"])
                nd.write(json.dumps(record, ensure_ascii=False,
                                    separators=(",", ":")) + "\n")
        if nd:
            nd.close()


if __name__ == "__main__":
    main()
