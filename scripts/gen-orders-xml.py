#!/usr/bin/env python3
"""Writes the benchmark orders (gen-orders.py's rows) as XML in the xml format's default shape,
<records><record id=".." status="..">, with a nested <customer id=".."><name>..</name>
</customer>, text children, empty notes as <note/>, one record per line (about 340 bytes a
record; 340 MB for 1,000,000), so `longshore convert` reads it with default options.

usage: gen-orders-xml.py ROWS OUT.xml
"""
import importlib.util
import os
import sys
from xml.sax.saxutils import escape, quoteattr

spec = importlib.util.spec_from_file_location(
    "gen_orders", os.path.join(os.path.dirname(__file__), "gen-orders.py"))
gen_orders = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_orders)


def element(name, value):
    return f"<{name}/>" if value is None else f"<{name}>{escape(value)}</{name}>"


def main():
    count, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<records>\n')
        for (order_id, customer_id, customer_name, status, currency, total, tax, items,
             created_at, updated_at, ship_city, note) in gen_orders.rows(count):
            out.write(
                f"<record id={quoteattr(order_id)} status={quoteattr(status)}>"
                f"<customer id={quoteattr(customer_id)}>{element('name', customer_name)}</customer>"
                + "".join(element(name, value) for name, value in [
                    ("currency", currency), ("total", total), ("tax", tax), ("items", items),
                    ("created_at", created_at), ("updated_at", updated_at),
                    ("ship_city", ship_city), ("note", note)])
                + "</record>\n")
        out.write("</records>\n")


if __name__ == "__main__":
    main()
