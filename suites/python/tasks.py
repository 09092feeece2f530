import asyncio, os, sqlite3
kept = []
async def inner():
    kept.append(sqlite3.connect(":memory:"))
async def open_in_task():
    await asyncio.wait_for(asyncio.ensure_future(inner()), 5)


# tasks.py [wait_for|direct] — a connection opened in a task of its own that open_in_task() (line 6)
# awaits, as asyncpg's connect does; ends with os._exit(0) so the connection leaks.
async def open_awaiting_task():
    await asyncio.ensure_future(inner())


async def main(mode):
    if mode == "direct":
        await open_awaiting_task()
    else:
        await open_in_task()
    os._exit(0)


import sys
asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "wait_for"))
