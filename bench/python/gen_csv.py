"""Writes the interactive benchmark's input: N rows of synthetic sales data from a fixed seed.

usage: python gen_csv.py OUT.csv ROWS SEED
Columns: id, category (20 values), region (5), amount (0-100, 2 decimals), active (true/false).
"""
import random
import sys

out, rows, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
categories = [f"cat{i:02d}" for i in range(20)]
regions = ["north", "south", "east", "west", "central"]
with open(out, "w", buffering=1 << 20) as f:
    f.write("id,category,region,amount,active\n")
    for i in range(rows):
        f.write(
            f"{i},{rng.choice(categories)},{rng.choice(regions)},"
            f"{rng.random() * 100:.2f},{'true' if rng.random() < 0.7 else 'false'}\n"
        )
