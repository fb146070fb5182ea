"""At image build time: the migrations applied once, kept in the image as an SQLite file and a
PostgreSQL dump; ls_init.py starts a new database from them (schema, migration records, content
types and permissions: no user, no secret). Migrating from nothing costs most of a minute on
PostgreSQL; loading the dump well under a second.

    python ls_template.py ls     Label Studio's own migrations (stock settings); re-run only when
                                 the dependencies change
    python ls_template.py app    pachstudio's on top of those (its settings); re-run when our code
                                 changes. Writes the two files ls_init.py reads.

PostgreSQL runs as a throw-away server of Debian's package (a build stage only), on a socket.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

SHARE = pathlib.Path(sys.prefix) / "share" / "pachstudio"
SQLITE = SHARE / "label_studio.sqlite3"  # what ls_init.py copies
PG_DUMP = SHARE / "label_studio.pg.sql"  # what ls_init.py loads
LS_SQLITE = SHARE / "label_studio.ls.sqlite3"  # Label Studio's migrations only (stage `ls`)
LS_PG_DUMP = SHARE / "label_studio.ls.pg.sql"
PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")
STOCK_SETTINGS = "label_studio.core.settings.label_studio"
OUR_SETTINGS = "pachstudio.labelstudio.settings"


def as_postgres(*cmd: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, stdout=subprocess.DEVNULL)


class ThrowawayPostgres:
    """initdb + a server on a private socket folder, trust auth, no TCP, no fsync; removed on exit."""

    def __enter__(self):
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="pachstudio-pg-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.data, self.socket = str(self.root / "data"), str(self.root)
        as_postgres(str(PG_BIN / "initdb"), "-D", self.data, "--auth=trust", "-U", "postgres", "-E", "UTF8")
        options = f"-c listen_addresses='' -k {self.socket} -c fsync=off -c full_page_writes=off"
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", self.data, "-o", options, "-w", "start")
        as_postgres(str(PG_BIN / "createdb"), "-h", self.socket, "-U", "postgres", "labelstudio")
        return self

    def env(self) -> dict:
        return {"DJANGO_DB": "postgresql", "POSTGRE_HOST": self.socket, "POSTGRE_PORT": "5432",
                "POSTGRE_NAME": "labelstudio", "POSTGRE_USER": "postgres", "POSTGRE_PASSWORD": "unused"}

    def load(self, dump: pathlib.Path) -> None:
        as_postgres(str(PG_BIN / "psql"), "-q", "-X", "-v", "ON_ERROR_STOP=1", "-1", "-h", self.socket,
                    "-U", "postgres", "-d", "labelstudio", "-f", str(dump))

    def dump(self, out: pathlib.Path) -> None:
        # Plain SQL, rows as INSERTs (ls_init.py runs it through psycopg, which has no COPY ... FROM
        # stdin), nothing that needs a superuser or a named role to load.
        cmd = ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_dump"), "-h", self.socket, "-U", "postgres",
               "--no-owner", "--no-privileges", "--no-comments", "--no-tablespaces", "--no-publications",
               "--no-subscriptions", "--no-security-labels", "--inserts", "--rows-per-insert=200", "labelstudio"]
        sql = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        # pg_dump 15.14+ wraps the dump in psql's \restrict ... \unrestrict: psql commands, which the
        # server (and so psycopg) does not know. Any other psql command would be a mistake here.
        lines = [line for line in sql.splitlines() if not re.match(r"\\(un)?restrict ", line)]
        if any(line.startswith("\\") for line in lines):
            sys.exit("ls_template: pg_dump wrote a psql command the loader cannot run: " +
                     next(line for line in lines if line.startswith("\\")))
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def __exit__(self, *exc):
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", self.data, "-m",
                        "immediate", "stop"], stdout=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)


def migrate(settings: str, data_dir: str, db_env: dict | None = None) -> None:
    """`migrate` in a child process (Django chooses its database once per process)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "LABEL_STUDIO_BASE_DATA_DIR": data_dir,
           "LATEST_VERSION_CHECK": "false", "SENTRY_DSN": "", "COLLECT_ANALYTICS": "false", **(db_env or {})}
    subprocess.run([sys.executable, __file__, "--migrate"], env=env, check=True)


def child_migrate() -> None:
    import label_studio

    sys.path.insert(0, str(pathlib.Path(label_studio.__file__).parent))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", "--no-color", verbosity=0)
    users = get_user_model().objects.count()
    if users:
        sys.exit(f"ls_template: the migrations made {users} user(s); a template must hold none")
    connections.close_all()
    sys.stdout.flush()
    os._exit(0)  # Label Studio leaves background threads behind that hold a plain exit for seconds


def stage(name: str) -> None:
    SHARE.mkdir(parents=True, exist_ok=True)
    settings = STOCK_SETTINGS if name == "ls" else OUR_SETTINGS
    sqlite_out, pg_out = (LS_SQLITE, LS_PG_DUMP) if name == "ls" else (SQLITE, PG_DUMP)
    with tempfile.TemporaryDirectory() as data_dir:
        db = pathlib.Path(data_dir) / "label_studio.sqlite3"
        if name == "app":
            shutil.copyfile(LS_SQLITE, db)
        migrate(settings, data_dir)
        shutil.copyfile(db, sqlite_out)
    with tempfile.TemporaryDirectory() as data_dir, ThrowawayPostgres() as pg:
        if name == "app":
            pg.load(LS_PG_DUMP)
        migrate(settings, data_dir, pg.env())
        pg.dump(pg_out)
    print(f"ls_template: {name}: {sqlite_out} ({sqlite_out.stat().st_size} bytes), {pg_out} "
          f"({pg_out.stat().st_size} bytes)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--migrate"]:
        child_migrate()
    elif sys.argv[1:] in (["ls"], ["app"]):
        stage(sys.argv[1])
    else:
        sys.exit(__doc__)
