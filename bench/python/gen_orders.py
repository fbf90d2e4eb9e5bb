"""Writes the recipe benchmark's input: a year of raw order events and a product dimension, from a fixed seed.

usage:
  python gen_orders.py orders OUT.csv ROWS SEED
  python gen_orders.py products OUT.csv SEED

Deterministic: the same arguments give the same bytes on any machine (only random.Random.random() is drawn,
whose sequence Python guarantees for a given seed). The data is dirty the way exported events are, so that
the recipe's parse, filter and dedupe steps have work to do:
  orders:   order_id, ts ("YYYY-MM-DD HH:MM:SS", spread over 2024 whatever ROWS is), customer_id (skewed:
            ROWS/20 customers, few of them frequent), product_id (0.5 % unknown: 9999), quantity (0.7 % zero
            or negative), unit_price (1 % empty or "n/a"), status (completed, " Completed " with stray case
            and blanks, cancelled, returned), country, channel; 2 % of the lines repeat the line before
            (a re-sent event: same order_id, same bytes).
  products: product_id 1..500, product_name, category (20), department (5), unit_cost.
"""
import sys
from datetime import datetime, timedelta

# Bump when the output changes: the benchmark caches files by this version.
VERSION = 1

PRODUCTS = 500
UNKNOWN_PRODUCT = 9999
COUNTRIES = ["DE", "FR", "GB", "US", "ES", "IT", "NL", "PL", "SE", "BR", "JP", "IN"]
CHANNELS = ["web", "mobile", "store"]
DEPARTMENTS = ["grocery", "electronics", "home", "fashion", "toys"]
START = datetime(2024, 1, 1)
SPAN_S = 366 * 24 * 3600  # 2024 is a leap year


def _random(seed):
    import random

    return random.Random(seed).random


def products(seed):
    """(product_id, name, category, department, list_price, unit_cost) for every product, from the seed."""
    r = _random(seed * 7919 + 1)
    out = []
    for pid in range(1, PRODUCTS + 1):
        cat = int(r() * 20)
        price = round(1 + r() * r() * 400, 2)
        cost = round(price * (0.45 + 0.35 * r()), 2)
        out.append((pid, f"product-{pid:03d}", f"cat{cat:02d}", DEPARTMENTS[cat % 5], price, cost))
    return out


def write_products(out, seed):
    with open(out, "w", newline="\n") as f:
        f.write("product_id,product_name,category,department,unit_cost\n")
        for pid, name, cat, dept, _price, cost in products(seed):
            f.write(f"{pid},{name},{cat},{dept},{cost:.2f}\n")


def write_orders(out, rows, seed):
    r = _random(seed)
    price = {p[0]: p[4] for p in products(seed)}
    customers = max(100, rows // 20)
    # timestamps are formatted from a per-day prefix: strftime per row would dominate at 10M rows
    day_prefix = [(START + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(367)]
    prev = None
    order_id = 0
    with open(out, "w", buffering=1 << 22, newline="\n") as f:
        f.write("order_id,ts,customer_id,product_id,quantity,unit_price,status,country,channel\n")
        for i in range(rows):
            if prev is not None and r() < 0.02:
                f.write(prev)
                continue
            order_id += 1
            t = min(SPAN_S - 1, (i * SPAN_S) // rows + int(r() * 900))
            day, rest = divmod(t, 86400)
            ts = f"{day_prefix[day]} {rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
            customer = 1 + int(customers * r() * r())
            pid = UNKNOWN_PRODUCT if r() < 0.005 else 1 + int(PRODUCTS * r())
            q = r()
            quantity = "0" if q < 0.005 else "-1" if q < 0.007 else str(1 + int(10 * r() * r()))
            u = r()
            if u < 0.007:
                unit_price = ""
            elif u < 0.01:
                unit_price = "n/a"
            else:
                unit_price = f"{price.get(pid, 25.0) * (0.8 + 0.2 * r()):.2f}"
            s = r()
            status = (
                "completed" if s < 0.84 else " Completed " if s < 0.86 else "cancelled" if s < 0.94 else "returned"
            )
            country = COUNTRIES[int(r() * len(COUNTRIES))]
            channel = CHANNELS[int(r() * len(CHANNELS))]
            prev = f"{order_id},{ts},{customer},{pid},{quantity},{unit_price},{status},{country},{channel}\n"
            f.write(prev)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "orders":
        write_orders(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif what == "products":
        write_products(sys.argv[2], int(sys.argv[3]))
    elif what == "version":
        print(VERSION)
    else:
        sys.exit(f"usage: {sys.argv[0]} orders OUT ROWS SEED | products OUT SEED | version")
