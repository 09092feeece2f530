# scripts/setup.sh — sourced by scripts/connleak and scripts/test: installs what is missing and builds, all on stderr.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --help of a script: its header comment (after the #! line, up to the first line that is not one).
help_from_header() {
  awk 'NR == 1 { next } /^# shellcheck/ || !/^#/ { exit } { sub(/^# ?/, ""); print }' "${BASH_SOURCE[1]}"
}
build="$root/build"

# Debian packages the build needs, and what each is checked by.
build_pkgs=(gcc pkg-config meson ninja-build libsqlite3-dev libpq-dev libunwind-dev libdw-dev libelf-dev libxml2-dev
            libjansson-dev libcriterion-dev)
# ...and what the suites need besides: a PostgreSQL server, the sqlite3 shell, psql, python3 for the tally;
# then the real clients suites/clients runs (each of its tests skips, saying why, where one is missing):
# Python's asyncpg, SQLAlchemy 1.4, psycopg2, aiosqlite, pytest, jsonschema (for Debian's /usr/bin/python3),
# pgjdbc with a JDK (java's source launcher needs the compiler), node with npm, PHP 8.2 with sqlite3, PDO
# sqlite, pgsql and PDO pgsql, openssl for a TLS server's certificate, g++ and make for npm's sqlite3.
test_pkgs=(postgresql sqlite3 postgresql-client python3
           python3-asyncpg python3-sqlalchemy python3-psycopg2 python3-aiosqlite python3-pytest python3-jsonschema
           libpostgresql-jdbc-java default-jdk-headless nodejs npm libnode-dev php-cli php-sqlite3 php-pgsql
           openssl g++ make
           chromium) # suites/docs: --format html loaded in headless chromium

missing_build_pkgs() {
  local m=()
  command -v cc >/dev/null 2>&1 || m+=(gcc)
  command -v pkg-config >/dev/null 2>&1 || m+=(pkg-config)
  command -v meson >/dev/null 2>&1 || m+=(meson)
  command -v ninja >/dev/null 2>&1 || m+=(ninja-build)
  if command -v pkg-config >/dev/null 2>&1; then
    pkg-config --exists sqlite3 || m+=(libsqlite3-dev)
    pkg-config --exists libpq || m+=(libpq-dev)
    pkg-config --exists libunwind || m+=(libunwind-dev)
    pkg-config --exists libdw || m+=(libdw-dev libelf-dev)
    pkg-config --exists jansson || m+=(libjansson-dev)
    pkg-config --exists criterion || m+=(libcriterion-dev)
    pkg-config --exists libxml-2.0 || m+=(libxml2-dev)
  else
    m+=(libsqlite3-dev libpq-dev libunwind-dev libdw-dev libelf-dev libjansson-dev libcriterion-dev libxml2-dev)
  fi
  echo "${m[@]}"
}

# What the suites cannot run without, then the clients suites/clients runs (optional: its tests skip
# without them, so scripts/test goes on when only these cannot be installed).
missing_test_pkgs() {
  echo "$(missing_core_test_pkgs) $(missing_client_pkgs)"
}

missing_core_test_pkgs() {
  local m=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || m+=(postgresql)
  command -v sqlite3 >/dev/null 2>&1 || m+=(sqlite3)
  command -v psql >/dev/null 2>&1 || m+=(postgresql-client)
  command -v python3 >/dev/null 2>&1 || m+=(python3)
  echo "${m[@]}"
}

missing_client_pkgs() {
  local m=()
  # Debian's python3 modules (pyenv's python3 may come first in PATH: not that one)
  if [ -x /usr/bin/python3 ]; then
    # shellcheck disable=SC2207
    m+=($(/usr/bin/python3 - <<'PY'
import importlib.util
for mod, pkg in (("asyncpg", "python3-asyncpg"), ("sqlalchemy", "python3-sqlalchemy"),
                 ("psycopg2", "python3-psycopg2"), ("aiosqlite", "python3-aiosqlite"),
                 ("pytest", "python3-pytest"), ("jsonschema", "python3-jsonschema")):
    if importlib.util.find_spec(mod) is None:
        print(pkg)
PY
))
  else
    m+=(python3-asyncpg python3-sqlalchemy python3-psycopg2 python3-aiosqlite python3-pytest python3-jsonschema)
  fi
  command -v chromium >/dev/null 2>&1 || m+=(chromium) # suites/docs: the HTML report in a browser
  [ -f /usr/share/java/postgresql.jar ] || m+=(libpostgresql-jdbc-java)
  command -v javac >/dev/null 2>&1 || m+=(default-jdk-headless)
  command -v node >/dev/null 2>&1 || m+=(nodejs)
  # npm comes with NodeSource's nodejs; Debian's npm would replace that node with Debian's
  command -v npm >/dev/null 2>&1 || m+=(npm)
  # node's headers for building npm's sqlite3 (NodeSource's nodejs has them; Debian's are in libnode-dev)
  [ -f /usr/include/node/node_api.h ] || m+=(libnode-dev)
  if command -v php >/dev/null 2>&1; then
    php -r 'exit(extension_loaded("sqlite3") && extension_loaded("pdo_sqlite") ? 0 : 1);' 2>/dev/null || m+=(php-sqlite3)
    php -r 'exit(extension_loaded("pgsql") && extension_loaded("pdo_pgsql") ? 0 : 1);' 2>/dev/null || m+=(php-pgsql)
  else
    m+=(php-cli php-sqlite3 php-pgsql)
  fi
  command -v openssl >/dev/null 2>&1 || m+=(openssl)
  command -v g++ >/dev/null 2>&1 || m+=(g++)
  command -v make >/dev/null 2>&1 || m+=(make)
  echo "${m[@]}"
}

# npm packages suites/clients runs, into DIR/clients-node/node_modules (a no-op when they are there;
# the build directory is their cache). One `npm install` each, saved to DIR/clients-node/package.json,
# so that installing one does not prune the other, and a failed sqlite3 build leaves pg in place.
# sqlite3's prebuilt binaries are GitHub downloads (unreachable from CI machines here): it is built
# from source against node's own headers, at -O0 (its bundled SQLite is most of the work: about 40 s
# of CPU at -O0, 90 s at -O3). A failure is a message, not a failed run: the node tests then skip.
clients_node_pkgs=(pg@8.23.1 sqlite3@6.0.1)
ensure_clients_node() {
  local dir=$1/clients-node p name
  if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "connleak: no node/npm: suites/clients' node tests will skip" >&2
    return 0
  fi
  # a fresh clone links a cache outside it (per node version): sqlite3's build is a minute of CPU
  # that each CI clone would otherwise pay again
  if [ ! -e "$dir" ]; then
    local cache=${CONNLEAK_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/connleak/clients-node-$(node --version)}
    mkdir -p "$cache" 2>/dev/null && ln -s "$cache" "$dir" 2>/dev/null || true
  fi
  mkdir -p "$dir" || return 0
  for p in "${clients_node_pkgs[@]}"; do
    name=${p%@*}
    # installed and loadable (a half-built sqlite3 has its package.json but no addon)
    (cd "$dir" && node -e "require('$name')" >/dev/null 2>&1) && continue
    echo "connleak: npm install $p into $dir ..." >&2
    local start=$SECONDS nodedir=""
    # node-gyp would download node's headers: use the installed ones
    [ -f /usr/include/node/node_api.h ] && nodedir=/usr
    [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
    if (cd "$dir" && env npm_config_build_from_source=true CFLAGS=-O0 CXXFLAGS=-O0 JOBS=2 \
          ${nodedir:+npm_config_nodedir=$nodedir} \
          timeout 600 npm install --no-audit --no-fund --save-exact --loglevel=error \
            --fetch-timeout=60000 --fetch-retries=1 "$p" >&2); then
      echo "connleak: npm install $p: $((SECONDS - start)) s" >&2
    else
      echo "connleak: npm install $p failed: suites/clients' tests that need it will skip" >&2
    fi
  done
  return 0
}

# apt-get when we may (root, or sudo without a password); else one line naming the packages.
install_pkgs() {
  [ $# -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "connleak: missing packages: $*; install them with: sudo apt-get install -y $*" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "connleak: missing packages: $* (Debian names); install them with your package manager" >&2
    return 1
  fi
  echo "connleak: installing $* ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q "$@" >&2 2>&1; then
    $sudo apt-get update -q >&2 2>&1 || true
    $sudo apt-get install -y -q "$@" >&2 2>&1 || { echo "connleak: could not install: $*" >&2; return 1; }
  fi
}

# ensure_build [cli]: configures and builds $build; with "cli", only what running needs (the CLI and
# the two libraries: no suites, benchmarks, fuzz or sanitizer targets), and nothing said when it is
# up to date.
ensure_build() {
  # shellcheck disable=SC2046
  install_pkgs $(missing_build_pkgs) || return 1
  if [ ! -f "$build/build.ninja" ]; then
    echo "connleak: configuring $build ..." >&2
    meson setup "$build" "$root" >&2 || { echo "connleak: meson setup failed" >&2; return 1; }
  fi
  local targets=()
  if [ "${1:-}" = cli ]; then
    # the linkable library's file carries the project version (libconnleak.so.0.1.0)
    # shellcheck disable=SC2207
    targets=($(ninja -C "$build" -t targets all 2>/dev/null |
      sed -n 's,^\(harness/connleak\|lib/recorder/libconnleak-preload\.so\|lib/recorder/libconnleak\.so[.0-9]*\): .*,\1,p'))
    [ ${#targets[@]} -eq 3 ] || targets=()
    ninja -C "$build" -n "${targets[@]}" 2>/dev/null | grep -q '^ninja: no work to do' && return 0
  fi
  ninja -C "$build" "${targets[@]}" >&2 || { echo "connleak: build failed" >&2; return 1; }
}
