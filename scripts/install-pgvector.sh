#!/bin/sh
# pgvector for the local PostgreSQL 15 (the semantic cache's shared index and its tests).
#
# Debian bookworm, which these machines run, has no postgresql-15-pgvector package (it
# arrived in trixie, for PostgreSQL 17). So this builds Debian's own pgvector source
# package (trixie's, fetched from deb.debian.org with apt-get source) against bookworm's
# postgresql-server-dev-15 and installs it into that server. Idempotent: it does nothing
# when the extension is already installed. Needs root (apt) the first time.
set -eu

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
if [ ! -x "$PG_CONFIG" ]; then
    echo "install-pgvector: no PostgreSQL 15 at $PG_CONFIG (set PG_CONFIG)" >&2
    exit 1
fi
if [ -f "$("$PG_CONFIG" --sharedir)/extension/vector.control" ]; then
    exit 0
fi

SOURCES=/etc/apt/sources.list.d/parley-trixie-src.sources
if [ ! -f "$SOURCES" ]; then
    cat > "$SOURCES" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
# Wait for another apt or dpkg run (an unattended upgrade, a parallel install) to finish.
APT_WAIT="-o DPkg::Lock::Timeout=600"
apt-get $APT_WAIT update -qq
DEBIAN_FRONTEND=noninteractive apt-get $APT_WAIT install -y -qq postgresql-server-dev-15 make gcc >/dev/null

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
apt-get source --download-only -qq pgvector 2>/dev/null
tar xzf pgvector_*.orig.tar.gz
cd pgvector-*/
# OPTFLAGS="" keeps the build portable (no -march=native)
make -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
echo "install-pgvector: installed pgvector $(grep default_version vector.control | cut -d"'" -f2)"
