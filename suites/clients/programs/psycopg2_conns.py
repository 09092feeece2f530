"""psycopg2_conns.py — psycopg2 (libpq) connections: `plain` (three over the shared cluster's socket, two closed) or `tls PORT` (two with sslmode=require to tcp_cluster.sh, one closed); os._exit with the rest open."""
import os
import sys

import psycopg2

if sys.argv[1] == "plain":
    conns = [psycopg2.connect("") for _ in range(3)]  # PGHOST etc. from `connleak postgres`
    want_ssl = False
else:
    conns = [psycopg2.connect(host="127.0.0.1", port=int(sys.argv[2]), user="postgres", dbname="postgres",
                              sslmode="require") for _ in range(2)]
    want_ssl = True
for c in conns:
    with c.cursor() as cur:
        cur.execute("SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)")
        assert cur.fetchone()[0] is want_ssl
for c in conns[1:]:
    c.close()
print(f"pid={os.getpid()}", flush=True)
os._exit(0)  # conns[0] stays open
