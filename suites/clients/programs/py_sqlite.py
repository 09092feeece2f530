"""py_sqlite.py — Python's sqlite3 (`sqlite3` mode) or aiosqlite (`aiosqlite` mode): two connections, one closed, os._exit with the other open."""
import asyncio
import os
import sys


def with_sqlite3():
    import sqlite3
    kept = sqlite3.connect(":memory:")
    closed = sqlite3.connect(":memory:")
    assert closed.execute("SELECT 1").fetchone() == (1,)
    closed.close()
    assert kept.execute("SELECT 2").fetchone() == (2,)


async def open_store():
    import aiosqlite
    return await aiosqlite.connect(":memory:")  # opened on a thread aiosqlite starts


async def with_aiosqlite():
    kept = await open_store()
    closed = await open_store()
    async with closed.execute("SELECT 1") as cur:
        assert await cur.fetchone() == (1,)
    await closed.close()
    async with kept.execute("SELECT 2") as cur:
        assert await cur.fetchone() == (2,)


if sys.argv[1] == "sqlite3":
    with_sqlite3()
else:
    asyncio.run(with_aiosqlite())
print(f"pid={os.getpid()}", flush=True)
os._exit(0)
