#!/usr/bin/env python3
"""Writes the orders data of issue 19's peer benchmark (scripts/bench-peers), deterministically:
ROWS rows of 12 columns, about 109 bytes a row as CSV.

  order_id, customer_id   integers
  customer_name           names in several scripts (Latin with accents, Cyrillic, Greek, CJK,
                          Arabic), some with commas and quotes
  status                  one of five values
  created_at              ISO 8601 timestamp in UTC
  updated_at              the same, 30% null
  amount                  decimal with two places
  tax_cents, quantity     integers
  currency                one of five codes
  discount                decimal, 80% null
  note                    text with commas, quotes, `&` and `<>`, 60% null

Each format written from the same rows: CSV (null = empty field), NDJSON and a JSON array
(numbers as JSON numbers, null as null) and XML (one <order> per row; a null field's element
is left out, as exports of sparse records do).

usage: gen-peers-orders.py ROWS [--csv F] [--ndjson F] [--json F] [--xml F]
"""
import argparse
import csv
import datetime
import json
import random
from xml.sax.saxutils import escape

NAMES = ["Müller & Söhne GmbH", "Ana Silva", "Иван Петров", "Γιώργος Παπαδόπουλος",
         "株式会社サクラ", "محمد العلي", "O'Neill, Sean", "Dvořák s.r.o.", "Nørgaard ApS",
         "Smith \"Bulk\" Ltd", "Łukasz Wójcik", "Zoë Lefèvre"]
STATUSES = ["completed", "pending", "cancelled", "refunded", "shipped"]
CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF"]
NOTES = ["Leave at door", "Deliver to dock 4, ask for \"Jan\"", "Fragile: glass & china",
         "Call before <9:00>", "Gift, no invoice"]
COLUMNS = ["order_id", "customer_id", "customer_name", "status", "created_at", "updated_at",
           "amount", "tax_cents", "currency", "quantity", "discount", "note"]


def iso(seconds):
    days, rest = divmod(seconds, 86400)
    day = datetime.date(2024, 1, 1) + datetime.timedelta(days=days)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{day.isoformat()}T{hours:02d}:{minutes:02d}:{secs:02d}Z"


def rows(count):
    rng = random.Random(19)
    for i in range(count):
        created = i * 30 + rng.randrange(30)
        cents = rng.randrange(100, 2_000_000)
        yield {
            "order_id": 10_000_000 + i,
            "customer_id": rng.randrange(1, 200_000),
            "customer_name": rng.choice(NAMES),
            "status": rng.choice(STATUSES),
            "created_at": iso(created),
            "updated_at": iso(created + rng.randrange(86400)) if rng.random() >= 0.3 else None,
            "amount": f"{cents // 100}.{cents % 100:02d}",
            "tax_cents": cents * 19 // 100,
            "currency": rng.choice(CURRENCIES),
            "quantity": rng.randrange(1, 50),
            "discount": f"{rng.randrange(1, 5000) / 100:.2f}" if rng.random() < 0.2 else None,
            "note": rng.choice(NOTES) if rng.random() < 0.4 else None,
        }


def json_line(row):
    parts = []
    for name in COLUMNS:
        value = row[name]
        if value is None:
            text = "null"
        elif name in ("amount", "discount"):
            text = value
        else:
            text = json.dumps(value, ensure_ascii=False)
        parts.append(f"\"{name}\":{text}")
    return "{" + ",".join(parts) + "}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("--csv")
    parser.add_argument("--ndjson")
    parser.add_argument("--json")
    parser.add_argument("--xml")
    args = parser.parse_args()
    outputs = {}
    if args.csv:
        outputs["csv"] = open(args.csv, "w", newline="", encoding="utf-8")
        writer = csv.writer(outputs["csv"], lineterminator="\n")
        writer.writerow(COLUMNS)
    for kind in ("ndjson", "json", "xml"):
        path = getattr(args, kind)
        if path:
            outputs[kind] = open(path, "w", encoding="utf-8")
    if "json" in outputs:
        outputs["json"].write("[\n")
    if "xml" in outputs:
        outputs["xml"].write("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<orders>\n")
    for index, row in enumerate(rows(args.rows)):
        if "csv" in outputs:
            writer.writerow(["" if row[name] is None else row[name] for name in COLUMNS])
        if "ndjson" in outputs or "json" in outputs:
            line = json_line(row)
            if "ndjson" in outputs:
                outputs["ndjson"].write(line + "\n")
            if "json" in outputs:
                outputs["json"].write(("," if index else "") + line + "\n")
        if "xml" in outputs:
            fields = "".join(
                f"<{name}>{escape(str(row[name]))}</{name}>"
                for name in COLUMNS if row[name] is not None
            )
            outputs["xml"].write(f"<order>{fields}</order>\n")
    if "json" in outputs:
        outputs["json"].write("]\n")
    if "xml" in outputs:
        outputs["xml"].write("</orders>\n")
    for output in outputs.values():
        output.close()


if __name__ == "__main__":
    main()
