#!/bin/sh
# tcp_cluster.sh — a private PostgreSQL on 127.0.0.1 that requires TLS (self-signed certificate) for the TLS clients; prints "port=N" when ready and stops when its stdin closes.
# The shared cluster of `connleak postgres` offers TLS on loopback TCP but accepts plain TCP too; a
# server that refuses a client without TLS is this one. Without that cluster's TCP
# (CONNLEAK_PG_TCP_HOST), the plain-TCP clients (pgjdbc, node-postgres) use this one too.
# Who may connect over TCP (pg_hba.conf): user postgres only with TLS (a server that requires it),
# user plain only without (the plain-TCP clients). The unix socket trusts everyone (setup only).
set -eu

bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
  bindir=$(pg_config --bindir)
else
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir=$d; done
fi
[ -n "$bindir" ] || { echo "tcp_cluster: no initdb found" >&2; exit 1; }

dir=$(mktemp -d /tmp/clk-tcp-XXXXXX)
chmod 0755 "$dir"
as=""
if [ "$(id -u)" -eq 0 ]; then
  # initdb and postgres refuse root: run them as the postgres user, as harness/postgres.c does;
  # setpriv execs in place (runuser would stay the parent and not pass on our SIGQUIT)
  chown postgres: "$dir"
  as="setpriv --reuid=postgres --regid=postgres --init-groups --"
fi
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -QUIT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

$as "$bindir/initdb" -D "$dir/data" --no-sync -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
$as openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$dir/server.key" -out "$dir/server.crt" >/dev/null 2>&1 || { echo "tcp_cluster: openssl failed" >&2; exit 1; }
chmod 0600 "$dir/server.key"
$as sh -c "cat > '$dir/data/pg_hba.conf'" <<'EOF'
local     all all              trust
hostssl   all postgres 127.0.0.1/32 trust
hostnossl all plain    127.0.0.1/32 trust
EOF

# A free port: bind 0 and let go (a race with another binder is unlikely and fails loudly).
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$as "$bindir/postgres" -D "$dir/data" -p "$port" -c listen_addresses=127.0.0.1 -c "unix_socket_directories=$dir" \
  -c ssl=on -c "ssl_cert_file=$dir/server.crt" -c "ssl_key_file=$dir/server.key" \
  -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=50 \
  </dev/null >"$dir/postgres.log" 2>&1 &
pid=$!
i=0
until "$bindir/pg_isready" -q -h "$dir" -p "$port"; do
  i=$((i + 1))
  if [ $i -gt 150 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "tcp_cluster: server did not start:" >&2
    tail -5 "$dir/postgres.log" >&2
    exit 1
  fi
  sleep 0.1
done
"$bindir/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -c "CREATE ROLE plain LOGIN SUPERUSER" >/dev/null
echo "port=$port"
echo "socketdir=$dir"
# Until whoever started us closes our stdin (also when it dies).
cat >/dev/null
