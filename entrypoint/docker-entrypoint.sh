#!/usr/bin/env bash
# Start-up of the pachstudio appliance, in the style of docker-library/postgres's entrypoint.
#
#   docker run IMAGE                  the appliance: Label Studio + mount server (+ embedded PFS server
#                                     when no cluster is configured), under supervisord
#   docker run IMAGE --workers 4      flags fall through to the appliance (they go to gunicorn)
#   docker run IMAGE pfs-server       only the embedded PFS server on 0.0.0.0:30650, data in /data/pfs
#   docker run IMAGE bash             anything else runs as given
#
# Env (each secret one also as VAR_FILE, for Docker secrets):
#   LABEL_STUDIO_USERNAME (default admin@localhost), LABEL_STUDIO_PASSWORD (generated and printed
#   once when empty), LABEL_STUDIO_USER_TOKEN, POSTGRE_PASSWORD (with DJANGO_DB=postgresql the start
#   waits up to PACHSTUDIO_DB_WAIT s for the database, then stops naming the host); the cluster: PACHD_ADDRESS,
#   PACH_CONFIG, PACH_CONTEXT, /root/.pachyderm/config.json. Init scripts (*.sh, *.py) in
#   /docker-entrypoint-init.d run once, on the first start on an empty /data.
set -Eeo pipefail

DATA=/data
MARKER="$DATA/.pachstudio-initialized"
RUN_DIR=/run/pachstudio
LIB=/usr/local/lib/pachstudio
CONF=/etc/pachstudio
SETUP_PENDING="$RUN_DIR/setup-pending"  # the first set-up runs (holds the marker's content)
FIRST_SECRETS=/dev/shm/pachstudio-first-user  # its password and token, in memory, until read

# Label Studio and the PFS server run as this user; only the mount server stays root.
APP_USER=pachstudio

log() { printf 'pachstudio: %s\n' "$*"; }
die() { printf '\npachstudio: error: %s\n\n' "$*" >&2; exit 1; }

# usage: file_env VAR [DEFAULT]: VAR from VAR or from the file named by VAR_FILE (not both).
file_env() {
	local var="$1" fileVar="${1}_FILE" def="${2:-}"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		die "both $var and $fileVar are set (but are exclusive)"
	fi
	local val="$def"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!fileVar:-}" ]; then
		[ -r "${!fileVar}" ] || die "$fileVar names ${!fileVar}, which cannot be read"
		val="$(< "${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

# "${AS_APP_USER[@]}" CMD...: CMD as $APP_USER, with no capability and no way to gain one.
AS_APP_USER=()
if [ "$(id -u)" = 0 ]; then
	AS_APP_USER=(setpriv "--reuid=$APP_USER" "--regid=$APP_USER" --init-groups --inh-caps=-all --bounding-set=-all
		--no-new-privs env "HOME=/home/$APP_USER" "USER=$APP_USER" "LOGNAME=$APP_USER")
fi

# What the user's programs write is theirs, also on a volume an older image filled as root
# (docker-library style: only what is not theirs yet, so a restart touches nothing).
own_data() {
	[ "$(id -u)" = 0 ] || return 0
	local dir
	for dir in "$@"; do
		mkdir -p "$dir"
		find "$dir" \! -user "$APP_USER" -exec chown "$APP_USER:$APP_USER" {} +
	done
}

# Auth of the embedded PFS server: on when PACHSTUDIO_PFS_AUTH is true (scripts/run sets it when
# it publishes port 30650 beyond loopback), and at every later start on a /data that has a root
# token (the server keeps auth on once on). The root token is made once, kept in ROOT_TOKEN (mode
# 600, the server's user's) and printed once; the server reads it from that file, the mount server
# from a config made here for it alone (root's, mode 600): never on a command line, never logged
# again. Sets PACHSTUDIO_PFS_ARGS (the server's extra flags) and, for the mount server, PACH_CONFIG.
ROOT_TOKEN="$DATA/pfs/root-token"
MOUNT_CONFIG="$RUN_DIR/pachyderm-config.json"
pfs_auth() {
	export PACHSTUDIO_PFS_ARGS=""
	if [ "${1:-}" = appliance ] && [ -n "${PACHSTUDIO_ROOT_TOKEN:-}" ]; then
		# A root token of the user's own: kept like a made one (the mount server needs it too), not printed.
		(umask 077 && printf '%s\n' "$PACHSTUDIO_ROOT_TOKEN" > "$ROOT_TOKEN")
		unset PACHSTUDIO_ROOT_TOKEN
		PACHSTUDIO_PFS_AUTH=1
	fi
	case "${PACHSTUDIO_PFS_AUTH:-}" in
		1|true|yes|on) ;;
		''|0|false|no|off) [ -s "$ROOT_TOKEN" ] || return 0 ;;
		*) die "PACHSTUDIO_PFS_AUTH=$PACHSTUDIO_PFS_AUTH: use 1 (auth on) or 0" ;;
	esac
	local made=0
	if [ ! -s "$ROOT_TOKEN" ]; then
		rm -f "$ROOT_TOKEN"
		"${AS_APP_USER[@]}" python -c 'import os, secrets, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, secrets.token_hex(16).encode() + b"\n")' "$ROOT_TOKEN"
		made=1
	fi
	if [ "$(id -u)" = 0 ]; then chown "$APP_USER:$APP_USER" "$ROOT_TOKEN"; fi
	chmod 600 "$ROOT_TOKEN"
	export PACHSTUDIO_PFS_ARGS="--root-token-file $ROOT_TOKEN"
	if [ "${1:-}" = appliance ]; then
		local token
		token="$(< "$ROOT_TOKEN")"
		(umask 077 && printf '{"v2": {"active_context": "embedded", "contexts": {"embedded": {"pachd_address": "%s", "session_token": "%s"}}}}\n' \
			"$CLUSTER_ADDRESS" "$token" > "$MOUNT_CONFIG")
		export PACH_CONFIG="$MOUNT_CONFIG"
	fi
	log "the embedded PFS server has auth on: every call needs a token (root token in $ROOT_TOKEN)"
	if [ "$made" = 1 ]; then
		local line="========================================================================"
		printf '\n%s\n  The embedded PFS server has auth on. Its root token (pach:root) is shown ONCE:\n\n    root token: %s\n\n  Give it to the Pachyderm SDK (Client.from_pachd_address(..., auth_token=...)) or\n  pachctl (session_token of the context). It stays in the volume, at %s.\n%s\n\n' \
			"$line" "$(< "$ROOT_TOKEN")" "$ROOT_TOKEN" "$line"
	fi
}

site_packages() { python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

# FUSE is not optional: without it the mount server cannot show Pachyderm under /pfs.
check_fuse() {
	local flags='--device /dev/fuse --cap-add SYS_ADMIN'
	if [ ! -c /dev/fuse ]; then
		die "this container has no /dev/fuse, which the mount server needs.
    Add these flags to docker run: $flags
    e.g. docker run -it -p 8080:8080 $flags pachstudio"
	fi
	if ! { : <> /dev/fuse; } 2>/dev/null; then
		die "/dev/fuse is there but cannot be opened (the device is not allowed in this container).
    Pass it as a device, not a volume: add these flags to docker run: $flags"
	fi
	local capeff
	capeff="$(awk '/^CapEff:/ {print $2}' /proc/self/status)"
	if [ -n "$capeff" ] && (( (0x$capeff & (1 << 21)) == 0 )); then
		die "this container may not mount filesystems (it lacks the SYS_ADMIN capability), so /pfs cannot be mounted.
    Add these flags to docker run: $flags"
	fi
	local probe="$RUN_DIR/mount-probe"
	mkdir -p "$probe"
	if ! mount -t tmpfs -o size=4k pachstudio-probe "$probe" 2>/dev/null; then
		die "mounting is refused in this container although it has SYS_ADMIN (a security profile such as AppArmor blocks it).
    Add these flags to docker run: $flags --security-opt apparmor=unconfined"
	fi
	umount "$probe" && rmdir "$probe"
}

# Sets CLUSTER_MODE (embedded|remote) and CLUSTER_ADDRESS from pachstudio.cluster's verdict.
find_cluster() {
	local out rc=0 err="$RUN_DIR/cluster-check.err"
	out="$(python -m pachstudio.cluster --check 2>"$err")" || rc=$?
	if [ "$rc" -ne 0 ]; then
		die "the Pachyderm cluster config cannot be used:
    $(sed 's/^/    /' "$err" | sed '1s/^    //')
    Fix it, or start without it (no config at all) to use the embedded PFS server."
	fi
	case "$out" in
		none)
			CLUSTER_MODE=embedded
			CLUSTER_ADDRESS=grpc://127.0.0.1:30650
			log "no Pachyderm cluster configured (no PACHD_ADDRESS, PACH_CONFIG or /root/.pachyderm/config.json):"
			log "starting the embedded PFS server (data in $DATA/pfs, port 30650; publish it with -p 127.0.0.1:30650:30650)"
			;;
		remote\ *)
			CLUSTER_MODE=remote
			CLUSTER_ADDRESS="${out#remote }"
			log "using the Pachyderm cluster at $CLUSTER_ADDRESS"
			;;
		*) die "unexpected answer from 'python -m pachstudio.cluster --check': $out" ;;
	esac
}

# Label Studio's migrations and first user. Skipped when the marker says this /data was set up by
# an image with the same migrations and database: a restart goes straight to the programs.
DB_CHECKED=0
init_label_studio() {
	local fingerprint
	fingerprint="$(cat "$LIB/migrations.fingerprint" 2>/dev/null || echo unknown) ${DJANGO_DB:-sqlite} ${POSTGRE_HOST:-} ${POSTGRE_NAME:-} $DJANGO_SETTINGS_MODULE"
	if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$fingerprint" ]; then
		log "$DATA already initialized: keeping its users, projects, storages and staged labels"
		return
	fi
	local first=0
	[ -f "$MARKER" ] || first=1
	if [ "$first" = 1 ]; then log "first start on this $DATA: setting up Label Studio"; else log "new image: applying Label Studio migrations"; fi
	local seeded=0
	# (with PostgreSQL, this first waits for the database as db_check.py does)
	"${AS_APP_USER[@]}" python "$LIB/ls_init.py" --seed || seeded=$?
	DB_CHECKED=1
	if [ "$first" = 1 ] && [ "$seeded" = 0 ] && ! compgen -G '/docker-entrypoint-init.d/*' >/dev/null; then
		# A new database that now holds the image's migrated schema: `migrate` has nothing to do,
		# so it and the first user run beside the programs' start (the first-setup program), and
		# the container is healthy once they are done. The password and token go there in a file
		# in memory, read and deleted by ls_init.py; the programs never see them.
		(umask 077 && printf '%s\0%s\0' "${LABEL_STUDIO_PASSWORD:-}" "${LABEL_STUDIO_USER_TOKEN:-}" > "$FIRST_SECRETS")
		[ "$(id -u)" != 0 ] || chown "$APP_USER:$APP_USER" "$FIRST_SECRETS"
		printf '%s\n' "$fingerprint" > "$SETUP_PENDING"
		return
	fi
	[ "$seeded" = 0 ] || [ "$seeded" = 3 ] || exit "$seeded"
	"${AS_APP_USER[@]}" python "$LIB/ls_init.py"
	if [ "$first" = 1 ]; then
		run_init_scripts
		own_data "$DATA/label-studio" "$DATA/pfs"  # what the init scripts (root) wrote there
	fi
	printf '%s\n' "$fingerprint" > "$MARKER.tmp" && mv "$MARKER.tmp" "$MARKER"
}

# The first-setup program (config/supervisord-first-setup.conf): migrations (none left to apply)
# and the first user while the programs start; then the marker. If it fails, the container stops.
first_setup() {
	if "${AS_APP_USER[@]}" python "$LIB/ls_init.py" --secrets "$FIRST_SECRETS"; then
		cp "$SETUP_PENDING" "$MARKER.tmp" && mv "$MARKER.tmp" "$MARKER"
		rm -f "$SETUP_PENDING"
		log "Label Studio is set up"
	else
		rm -f "$FIRST_SECRETS"
		printf '\npachstudio: error: %s\n\n' "the first set-up of Label Studio failed (above): stopping the container" >&2
		kill -TERM 1
		exit 1
	fi
}

run_init_scripts() {
	local f
	for f in /docker-entrypoint-init.d/*; do
		[ -e "$f" ] || continue
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then log "running $f"; "$f"
				else log "sourcing $f"; . "$f"; fi ;;
			*.py) log "running $f"; python "$f" ;;
			*) log "ignoring $f" ;;
		esac
	done
}

write_supervisord_conf() {
	local conf="$RUN_DIR/supervisord.conf"
	{
		cat "$CONF/supervisord.conf" "$CONF/supervisord-appliance.conf"
		if [ "$CLUSTER_MODE" = embedded ]; then cat "$CONF/supervisord-pfs-server.conf"; fi
		if [ -f "$SETUP_PENDING" ]; then cat "$CONF/supervisord-first-setup.conf"; fi
	} > "$conf.tmp"
	mv "$conf.tmp" "$conf"
	echo "$CLUSTER_MODE" > "$RUN_DIR/mode"
}

appliance() {
	rm -f "$SETUP_PENDING" "$FIRST_SECRETS"  # left by an earlier start of this container
	check_fuse
	file_env LABEL_STUDIO_USERNAME admin@localhost
	file_env LABEL_STUDIO_PASSWORD
	file_env LABEL_STUDIO_USER_TOKEN
	file_env POSTGRE_PASSWORD
	export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="${LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN:-true}"
	export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-pachstudio.labelstudio.settings}"
	SITE="$(site_packages)"
	LABEL_STUDIO_PATH="$SITE/label_studio"
	export LABEL_STUDIO_PATH

	find_cluster
	mkdir -p "$DATA/mount" /pfs
	own_data "$DATA/label-studio"
	if [ "$CLUSTER_MODE" = embedded ]; then
		own_data "$DATA/pfs"
		export PACHSTUDIO_MOUNT_ARGS="--pachd-address $CLUSTER_ADDRESS"
		file_env PACHSTUDIO_ROOT_TOKEN
		pfs_auth appliance
	else
		export PACHSTUDIO_MOUNT_ARGS=""
	fi

	init_label_studio
	if [ "${LABEL_STUDIO_DJANGO_DB:-${DJANGO_DB:-}}" = postgresql ] && [ "$DB_CHECKED" = 0 ]; then
		python "$LIB/db_check.py"  # a restart: the set-up (ls_init.py --seed) did not wait for it
	fi
	# Only the first start needs these; the programs never see them.
	unset LABEL_STUDIO_PASSWORD LABEL_STUDIO_USER_TOKEN

	export GUNICORN_EXTRA_ARGS="$*"
	write_supervisord_conf
	log "starting: $([ "$CLUSTER_MODE" = embedded ] && echo 'embedded PFS server, ')mount server (/pfs), Label Studio on port 8080"
	exec supervisord -n -c "$RUN_DIR/supervisord.conf"
}

# `docker run IMAGE pfs-server [FLAGS]`: the embedded PFS server alone, as the user pachstudio, and
# beside it (as root) the datum launcher that runs its pipelines' datums as users of their own,
# both under supervisord as in the appliance. Started as another user (docker run --user), the
# server runs alone as that user: datums then run as it too (the pipeline's worker_rc says so).
pfs_server_only() {
	if [ "$(id -u)" != 0 ]; then
		log "embedded PFS server only: port 30650, data in $DATA/pfs, as uid $(id -u); no datum launcher (it needs root)"
		# shellcheck disable=SC2086 # PACHSTUDIO_PFS_ARGS: flags, split on purpose
		exec pachstudio pfs-server --host 0.0.0.0 --port 30650 --data "$DATA/pfs" $PACHSTUDIO_PFS_ARGS "$@"
	fi
	# the user's flags join the server's command line in supervisord's quoting (shlex)
	PACHSTUDIO_PFS_ARGS="$PACHSTUDIO_PFS_ARGS $(python -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "$@")"
	export PACHSTUDIO_PFS_ARGS
	local conf="$RUN_DIR/supervisord.conf"
	cat "$CONF/supervisord.conf" "$CONF/supervisord-pfs-server.conf" > "$conf.tmp"
	mv "$conf.tmp" "$conf"
	log "embedded PFS server only: port 30650, data in $DATA/pfs, as user $APP_USER; its datums through the datum launcher"
	exec supervisord -n -c "$conf"
}

main() {
	mkdir -p "$RUN_DIR"
	if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
		set -- appliance "$@"
	fi
	case "$1" in
		appliance)
			shift
			appliance "$@"
			;;
		first-setup)  # internal: the first-setup program of supervisord
			first_setup
			;;
		pfs-server)
			shift
			own_data "$DATA/pfs"
			pfs_auth pfs-server
			echo pfs-server > "$RUN_DIR/mode"
			rm -f "$RUN_DIR/pfs-tls"
			case " $* " in *" --tls-cert"*) touch "$RUN_DIR/pfs-tls" ;; esac  # the health check can only see its port
			pfs_server_only "$@"
			;;
		*)
			exec "$@"
			;;
	esac
}

main "$@"
