"""Waits for Label Studio's PostgreSQL database at start-up, or stops the start saying why.

Run by docker-entrypoint.sh when DJANGO_DB=postgresql, before migrations and on every restart: a
database that is still starting (compose starts both at once) is waited for; a wrong password, an
unknown database or a host that never answers stops the start with the host and what failed. The
password is never printed: PostgreSQL's own messages do not contain it, and ours do not either.

Env: POSTGRE_HOST, POSTGRE_PORT, POSTGRE_NAME, POSTGRE_USER, POSTGRE_PASSWORD (as Label Studio reads
them, also with the LABEL_STUDIO_ prefix), PACHSTUDIO_DB_WAIT (seconds to wait, default 60).
"""
import os
import sys
import time

import psycopg


def setting(name: str, default: str) -> str:
    return os.environ.get(f"LABEL_STUDIO_{name}") or os.environ.get(name) or default


def fail(message: str) -> None:
    print(f"\npachstudio: error: {message}\n", file=sys.stderr)
    sys.exit(1)


# Failures that waiting cannot mend: PostgreSQL answered and refused.
FINAL = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
         "permission denied")


def connect_args() -> dict:
    """psycopg.connect's arguments for Label Studio's database, read as Label Studio reads them."""
    return {"host": setting("POSTGRE_HOST", "localhost"), "port": setting("POSTGRE_PORT", "5432"),
            "dbname": setting("POSTGRE_NAME", "postgres"), "user": setting("POSTGRE_USER", "postgres"),
            "password": setting("POSTGRE_PASSWORD", "postgres")}


def main() -> None:
    args = connect_args()
    host, port, name, user, password = (args[k] for k in ("host", "port", "dbname", "user", "password"))
    wait = float(os.environ.get("PACHSTUDIO_DB_WAIT") or 60)
    where = f"PostgreSQL at {host}:{port} (database {name!r}, user {user!r})"
    deadline, said = time.monotonic() + wait, False
    while True:
        try:
            psycopg.connect(**args, connect_timeout=5).close()
            return
        except psycopg.Error as e:
            reason = " ".join(str(e).replace(password, "***").split()) if password else " ".join(str(e).split())
            if any(word in reason for word in FINAL):
                fail(f"cannot use {where}: {reason}.\n    Check POSTGRE_USER, POSTGRE_NAME and the "
                     "password (POSTGRE_PASSWORD or POSTGRE_PASSWORD_FILE).")
            if time.monotonic() >= deadline:
                fail(f"{where} did not answer within {wait:.0f} s: {reason}.\n    Check POSTGRE_HOST "
                     "and POSTGRE_PORT, and that the database is running on a network this container "
                     "reaches (PACHSTUDIO_DB_WAIT allows a slower start more time).")
            if not said:
                print(f"pachstudio: waiting for {where}: {reason}", flush=True)
                said = True
            time.sleep(1)


if __name__ == "__main__":
    main()
