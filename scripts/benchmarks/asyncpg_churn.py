"""asyncpg_churn.py — asyncpg connect+close in a loop (the wire route's cost on a real client); prints churn's columns.

    python3 asyncpg_churn.py PAIRS
Prints: wall_seconds ns_per_pair cpu_seconds 0 0 0 (the loop alone, after one untimed pair)."""
import asyncio
import os
import sys
import time

import asyncpg


async def main(n):
    kw = dict(host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]), user=os.environ.get("PGUSER", "postgres"),
              database=os.environ.get("PGDATABASE", "postgres"))
    await (await asyncpg.connect(**kw)).close()
    t0, c0 = time.monotonic(), time.process_time()
    for _ in range(n):
        await (await asyncpg.connect(**kw)).close()
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    print(f"{wall:.6f} {wall * 1e9 / n:.1f} {cpu:.6f} 0 0 0")


asyncio.run(main(int(sys.argv[1])))
