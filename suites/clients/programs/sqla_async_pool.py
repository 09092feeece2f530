"""sqla_async_pool.py — SQLAlchemy 1.4's async engine over asyncpg with a busy pool; prints the pool's own connect/close/close_detached event counts, then leaves one checkout open at os._exit."""
import asyncio
import os

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

counts = {"connect": 0, "close": 0, "close_detached": 0}


def count(name):
    def listener(*args):
        counts[name] += 1
    return listener


async def main():
    # the shared cluster's unix socket, from `connleak postgres`
    engine = create_async_engine(
        f"postgresql+asyncpg://{os.environ['PGUSER']}@/{os.environ['PGDATABASE']}",
        connect_args={"host": os.environ["PGHOST"], "port": int(os.environ["PGPORT"]),
                      "server_settings": {"jit": "off"}},
        pool_size=2, max_overflow=2, pool_pre_ping=True, pool_use_lifo=True)
    for name in counts:
        event.listen(engine.sync_engine.pool, name, count(name))

    async def task(i):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.05)"))
            return (await conn.execute(text("SELECT CAST(:i AS integer)"), {"i": i})).scalar()

    # four at once: two pooled connections and two overflow ones (closed when they come back)
    assert await asyncio.gather(*(task(i) for i in range(4))) == [0, 1, 2, 3]

    # an invalidated connection: closed by the pool, replaced on the next checkout
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        await conn.invalidate()

    # a pooled connection whose backend the server terminated while checked in: pre-ping finds it
    a = await engine.connect()
    b = await engine.connect()
    pid_a = (await a.execute(text("SELECT pg_backend_pid()"))).scalar()
    await a.close()
    assert (await b.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid_a})).scalar()
    await b.close()
    await asyncio.sleep(0.2)
    await asyncio.gather(*(task(i) for i in range(3)))

    # a detached connection: the pool lets go of it, its close is close_detached
    async with engine.connect() as conn:
        await conn.run_sync(lambda sync_conn: sync_conn.detach())
        await conn.execute(text("SELECT 1"))

    # checked out and never returned
    global never_returned
    never_returned = await engine.connect()
    await never_returned.execute(text("SELECT 1"))

    await engine.dispose()  # closes what is checked in, not the checkout
    print("pool connect={connect} close={close} close_detached={close_detached}".format(**counts), flush=True)
    os._exit(0)


asyncio.run(main())
