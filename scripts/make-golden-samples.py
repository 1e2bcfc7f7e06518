#!/usr/bin/env python3
"""Writes the awkward real-world samples in samples/formats/ that need a tool to make:
an Excel report (two sheets, a merged title above the header, a blank row between title and
header and one among the data, real dates and date-times). Run once; the files are
committed, so the tests need no Python.

usage: pip install openpyxl==3.1.5 && python3 scripts/make-golden-samples.py
"""
import datetime
import os

import openpyxl

here = os.path.join(os.path.dirname(__file__), "..", "samples", "formats")
book = openpyxl.Workbook()
summary = book.active
summary.title = "Summary"
summary["A1"] = "See the Orders sheet"

orders = book.create_sheet("Orders")
orders["A1"] = "Orders, August 2024"
orders.merge_cells("A1:F1")
orders.append([])  # row 2 stays blank
orders.append(["Order", "Customer", "Ordered", "Shipped at", "Qty", "Amount"])
rows = [
    ("SO-3001", "Müller GmbH", datetime.date(2024, 8, 1), datetime.datetime(2024, 8, 2, 9, 30), 3, 149.9),
    ("SO-3002", "Café Zoë", datetime.date(2024, 8, 2), None, 12, 1250),
    None,  # a blank row among the data
    ("SO-3003", "Søren & Co", datetime.date(2024, 8, 3), datetime.datetime(2024, 8, 3, 17, 5, 12), 1, 75.5),
]
for row in rows:
    orders.append(list(row) if row else [])
for cell in orders["C"][3:]:
    cell.number_format = "yyyy-mm-dd"
for cell in orders["D"][3:]:
    cell.number_format = "yyyy-mm-dd hh:mm:ss"
book.save(os.path.join(here, "orders-report.xlsx"))
