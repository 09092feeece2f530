"""py_churn.py — Python's sqlite3.connect(":memory:") + close in a loop (the cost of reading Python frames at each event); prints churn's columns.

    python3 py_churn.py PAIRS
Prints: wall_seconds ns_per_pair cpu_seconds 0 0 0 (the loop alone, after 100 untimed pairs)."""
import sqlite3
import sys
import time


def work(n):
    for _ in range(n):
        sqlite3.connect(":memory:").close()


n = int(sys.argv[1])
work(100)
t0, c0 = time.monotonic(), time.process_time()
work(n)
wall, cpu = time.monotonic() - t0, time.process_time() - c0
print(f"{wall:.6f} {wall * 1e9 / n:.1f} {cpu:.6f} 0 0 0")
