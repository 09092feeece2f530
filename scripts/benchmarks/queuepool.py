"""queuepool.py — SQLAlchemy's QueuePool doing what poolbench does: checkout+checkin per pair on an SQLite file.

    python3 queuepool.py FILE PAIRS THREADS

Prints "wall_seconds ns_per_pair sqlalchemy_version" (ns per pair: wall time / pairs per thread),
or exits 3 when SQLAlchemy is not importable. One pool shared by the threads; pool_size 5,
max_overflow 10 (dbconf's defaults, which are QueuePool's); no pre-ping (dbconf pings only
PostgreSQL connections); reset on return (rollback) as both do by default.
"""
import sys
import threading
import time

try:
    import sqlalchemy
    from sqlalchemy import create_engine
    from sqlalchemy.pool import QueuePool
except ImportError:
    sys.exit(3)


def main():
    path, pairs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    engine = create_engine(f"sqlite:///{path}", poolclass=QueuePool, pool_size=5, max_overflow=10,
                           connect_args={"check_same_thread": False})
    pool = engine.pool
    per = pairs // threads
    warm = threading.Barrier(threads + 1)
    go = threading.Barrier(threads + 1)

    def run():
        pool.connect().close()
        warm.wait()
        go.wait()
        connect = pool.connect
        for _ in range(per):
            connect().close()

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    warm.wait()
    t0 = time.perf_counter()
    go.wait()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    engine.dispose()
    print(f"{dt:.6f} {dt * 1e9 / per:.1f} {sqlalchemy.__version__}")


main()
