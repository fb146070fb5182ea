#!/usr/bin/env bash
# Docker HEALTHCHECK: healthy when every program of this container's mode answers.
# No curl or python start-up: bash's /dev/tcp keeps a check cheap enough to run every few seconds.
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

mode="$(cat /run/pachstudio/mode 2>/dev/null)" || { echo "not started yet" >&2; exit 1; }
if [ -e /run/pachstudio/setup-pending ]; then
	echo "first start: Label Studio's migrations and first user are being set up" >&2
	exit 1
fi
case "$mode" in
	pfs-server) tcp_ok 30650 ;;
	embedded) tcp_ok 30650 && http_ok 9002 /health && http_ok 8080 /health ;;
	remote) http_ok 9002 /health && http_ok 8080 /health ;;
	*) exit 1 ;;
esac
