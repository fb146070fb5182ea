#!/usr/bin/env bash
# First start on an empty data folder: initdb with the given user, password and database, as the
# official image does; then PostgreSQL in the foreground, listening on every interface.
set -Eeuo pipefail
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
password="${POSTGRES_PASSWORD:-}"
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then password="$(< "$POSTGRES_PASSWORD_FILE")"; fi
[ -n "$password" ] || { echo "postgres: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is needed" >&2; exit 1; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pwfile="$(mktemp)"; printf '%s\n' "$password" > "$pwfile"
	initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" --auth=scram-sha-256 >/dev/null
	rm -f "$pwfile"
	echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
	if [ "$db" != postgres ]; then
		postgres --single -D "$PGDATA" -j postgres <<< "CREATE DATABASE \"$db\" OWNER \"$user\";" >/dev/null
	fi
	echo "postgres: initialized $PGDATA (user $user, database $db)"
fi
[ "${1:-postgres}" = postgres ] && shift || true
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
