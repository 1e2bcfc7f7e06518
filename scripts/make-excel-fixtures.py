#!/usr/bin/env python3
"""Makes the small .xls and .ods workbooks under tests/fixtures/ that the excel decoder's tests
read (rust_xlsxwriter writes only .xlsx). Run once; the files are committed, so tests need no
Python. Needs the PyPI packages xlwt 1.3.0 and odfpy 1.4.1:

    pip install xlwt==1.3.0 odfpy==1.4.1 && python3 scripts/make-excel-fixtures.py

Both workbooks hold the same two sheets: `Notes` (one text cell) and `Orders`:

    id | name | amount | shipped | ordered_on           (row 1: the header)
    1  | Ann  | 12.5   | TRUE    | 2024-08-01           (a date)
    2  | Bo   | 3      | FALSE   | 2024-08-02 10:30:00  (a date-time)
"""
import datetime
import os

import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")

HEADER = ["id", "name", "amount", "shipped", "ordered_on"]
ROWS = [
    [1, "Ann", 12.5, True, datetime.date(2024, 8, 1)],
    [2, "Bo", 3, False, datetime.datetime(2024, 8, 2, 10, 30)],
]


def make_xls(path):
    book = xlwt.Workbook()
    book.add_sheet("Notes").write(0, 0, "see Orders")
    sheet = book.add_sheet("Orders")
    date = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    date_time = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM:SS")
    for column, name in enumerate(HEADER):
        sheet.write(0, column, name)
    for row, values in enumerate(ROWS, start=1):
        for column, value in enumerate(values):
            if isinstance(value, datetime.datetime):
                sheet.write(row, column, value, date_time)
            elif isinstance(value, datetime.date):
                sheet.write(row, column, value, date)
            else:
                sheet.write(row, column, value)
    book.save(path)


def ods_cell(value):
    if isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
        cell = TableCell(valuetype="boolean", booleanvalue=str(value).lower())
    elif isinstance(value, (datetime.date, datetime.datetime)):
        text = value.isoformat()
        cell = TableCell(valuetype="date", datevalue=text)
    elif isinstance(value, (int, float)):
        text = str(value)
        cell = TableCell(valuetype="float", value=value)
    else:
        text = value
        cell = TableCell(valuetype="string")
    cell.addElement(P(text=text))
    return cell


def make_ods(path):
    document = OpenDocumentSpreadsheet()
    notes = Table(name="Notes")
    row = TableRow()
    row.addElement(ods_cell("see Orders"))
    notes.addElement(row)
    document.spreadsheet.addElement(notes)
    orders = Table(name="Orders")
    for values in [HEADER] + ROWS:
        row = TableRow()
        for value in values:
            row.addElement(ods_cell(value))
        orders.addElement(row)
    document.spreadsheet.addElement(orders)
    document.save(path)


if __name__ == "__main__":
    os.makedirs(FIXTURES, exist_ok=True)
    make_xls(os.path.join(FIXTURES, "orders.xls"))
    make_ods(os.path.join(FIXTURES, "orders.ods"))
