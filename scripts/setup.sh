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
# ...and what the suites need besides: a PostgreSQL server, the sqlite3 shell, psql, python3 for the tally.
test_pkgs=(postgresql sqlite3 postgresql-client python3)

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

missing_test_pkgs() {
  local m=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || m+=(postgresql)
  command -v sqlite3 >/dev/null 2>&1 || m+=(sqlite3)
  command -v psql >/dev/null 2>&1 || m+=(postgresql-client)
  command -v python3 >/dev/null 2>&1 || m+=(python3)
  echo "${m[@]}"
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

ensure_build() {
  # shellcheck disable=SC2046
  install_pkgs $(missing_build_pkgs) || return 1
  if [ ! -f "$build/build.ninja" ]; then
    echo "connleak: configuring $build ..." >&2
    meson setup "$build" "$root" >&2 || { echo "connleak: meson setup failed" >&2; return 1; }
  fi
  # a no-op when nothing changed
  ninja -C "$build" >&2 || { echo "connleak: build failed" >&2; return 1; }
}
