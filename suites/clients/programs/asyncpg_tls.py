"""asyncpg_tls.py — asyncpg with ssl= against tcp_cluster.sh's server, which accepts user postgres over TCP only with TLS: one connection closed, one open at os._exit."""
import asyncio
import os
import ssl
import sys

import asyncpg

port = int(sys.argv[1])


async def main():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server's certificate is a throwaway self-signed one
    conns = [await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres", ssl=ctx)
             for _ in range(2)]
    for c in conns:
        assert await c.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    await conns[0].close()
    print(f"pid={os.getpid()}", flush=True)
    os._exit(0)


asyncio.run(main())
