#!/usr/bin/env bash
# Docker HEALTHCHECK: healthy when every program of this container's mode answers.
# Bash's /dev/tcp for the HTTP programs; the PFS server gets a real gRPC call with a deadline
# (grpc_health.py, about 0.1 s of CPU), since a server whose workers are all stuck still accepts
# connections. A TLS-only server (pfs-server mode with --tls-cert) is checked by its port alone.
set -uo pipefail

tcp_ok() { # port
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	exec 3>&-
}

http_ok() { # port path
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$2" >&3
	local status=""
	IFS= read -r -t 3 status <&3 || true
	exec 3>&-
	case "$status" in
		HTTP/1.?" 200"*) return 0 ;;
	esac
	echo "port $1 $2: ${status:-no answer}" >&2
	return 1
}

pfs_ok() {
	if [ -e /run/pachstudio/pfs-tls ]; then
		tcp_ok 30650
	else
		python /usr/local/lib/pachstudio/grpc_health.py 127.0.0.1:30650 3
	fi
}

mode="$(cat /run/pachstudio/mode 2>/dev/null)" || { echo "not started yet" >&2; exit 1; }
if [ -e /run/pachstudio/setup-pending ]; then
	echo "first start: Label Studio's migrations and first user are being set up" >&2
	exit 1
fi
case "$mode" in
	pfs-server) pfs_ok ;;
	embedded) pfs_ok && http_ok 9002 /health && http_ok 8080 /health ;;
	remote) http_ok 9002 /health && http_ok 8080 /health ;;
	*) exit 1 ;;
esac
