#!/usr/bin/env bash
# Makes sure PostgreSQL has the pgvector extension, so the tests of kb/vectors.py run its HNSW backend
# (tenants' migration 0002 creates the extension in each database when the server has it).
#
# Debian bookworm ships no pgvector package (trixie does, for PostgreSQL 17 only). As root with apt:
# Debian's `postgresql-<major>-pgvector` when a configured repository has it (apt.postgresql.org, newer
# Debian), else pgvector built from Debian's own source tarball (fetched from the same Debian mirror,
# checked against its SHA-256) with `postgresql-server-dev-<major>`, about 20 s. Without root it says what to
# install and exits non-zero. When the extension's files are there it returns at once. `make test` runs it.
#
# PG_CONFIG overrides which server's pg_config decides the install (default: the newest under /usr/lib/postgresql).
set -euo pipefail

version=0.8.0
tarball="pgvector_${version}.orig.tar.gz"
sha256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

pg_config="${PG_CONFIG:-$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -n 1 || true)}"
if [[ -z "$pg_config" || ! -x "$pg_config" ]]; then
    echo "ensure_pgvector: no PostgreSQL server found under /usr/lib/postgresql (set PG_CONFIG)." >&2
    exit 1
fi
major="$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
sharedir="$("$pg_config" --sharedir)"
if [[ -f "$sharedir/extension/vector.control" ]]; then
    exit 0
fi

how="apt-get install postgresql-${major}-pgvector (apt.postgresql.org), or build https://github.com/pgvector/pgvector"
if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_pgvector: PostgreSQL ${major} has no pgvector; the vector tests need it. As root:  $how" >&2
    exit 1
fi

started=$SECONDS
log="$(mktemp)"
work="$(mktemp -d)"
trap 'rm -rf "$log" "$work"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300 -q)  # wait for another apt run (ensure_browser.sh) instead of failing

apt-get "${apt_opts[@]}" update >"$log" 2>&1 || { tail -n 20 "$log" >&2; exit 1; }
if apt-cache show "postgresql-${major}-pgvector" >/dev/null 2>&1; then
    echo "ensure_pgvector: installing postgresql-${major}-pgvector..."
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "postgresql-${major}-pgvector" >"$log" 2>&1 \
        || { tail -n 30 "$log" >&2; exit 1; }
else
    echo "ensure_pgvector: no postgresql-${major}-pgvector package; building pgvector ${version} from Debian's source..."
    if ! { apt-get "${apt_opts[@]}" install -y --no-install-recommends "postgresql-server-dev-${major}" make gcc \
            && curl -fsSL "$mirror/pool/main/p/pgvector/$tarball" -o "$work/$tarball"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "ensure_pgvector: the build's prerequisites failed; by hand:  $how" >&2
        exit 1
    fi
    echo "$sha256  $work/$tarball" | sha256sum -c --quiet - || { echo "ensure_pgvector: checksum mismatch" >&2; exit 1; }
    mkdir "$work/src"
    tar -xzf "$work/$tarball" -C "$work/src" --strip-components=1
    # OPTFLAGS="": no -march=native, so the library also runs on another CPU than the one that built it
    if ! { make -C "$work/src" -j2 PG_CONFIG="$pg_config" OPTFLAGS="" \
            && make -C "$work/src" install PG_CONFIG="$pg_config"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        exit 1
    fi
fi
if [[ ! -f "$sharedir/extension/vector.control" ]]; then
    echo "ensure_pgvector: installed, but $sharedir/extension/vector.control is still missing." >&2
    exit 1
fi
echo "ensure_pgvector: pgvector ready for PostgreSQL ${major} in $((SECONDS - started)) s"
