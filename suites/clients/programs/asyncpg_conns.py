"""asyncpg_conns.py — asyncpg connections for the clients suite: `leak` (two, one closed, os._exit with the other open) or `clean` (three rounds and a server-terminated one)."""
import asyncio
import os
import sys

import asyncpg

# PGHOST, PGPORT, PGUSER, PGDATABASE come from `connleak postgres` (a unix socket), which asyncpg reads itself.


async def open_report_conn():
    return await asyncpg.connect()


async def leak():
    kept = await open_report_conn()
    closed = await asyncpg.connect()
    assert await closed.fetchval("SELECT 1") == 1
    await closed.close()
    assert await kept.fetchval("SELECT 2") == 2
    print(f"pid={os.getpid()}", flush=True)
    os._exit(0)  # the interpreter never gets to close `kept`


async def clean():
    for i in range(3):
        conn = await asyncpg.connect()
        assert await conn.fetchval("SELECT $1::int", i) == i
        await conn.close()
    victim = await asyncpg.connect()
    killer = await asyncpg.connect()
    pid = victim.get_server_pid()
    assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
    await killer.close()
    # asyncpg learns of it when the server's FATAL message and EOF arrive (bounded wait)
    for _ in range(100):
        if victim.is_closed():
            break
        await asyncio.sleep(0.05)
    else:
        raise SystemExit("asyncpg never noticed the terminated connection")
    await victim.close()
    print(f"pid={os.getpid()}", flush=True)


asyncio.run({"leak": leak, "clean": clean}[sys.argv[1]]())
