"""Label Studio set-up for the appliance: migrations, the organization, the first user.

Run by docker-entrypoint.sh on the first start on a /data (and after an image brings new
migrations). Idempotent: an existing user keeps its password and token.

    ls_init.py --seed            check the settings; a new database gets the image's migrated schema
    ls_init.py [--secrets FILE]  migrations, organization, first user (password and token from FILE)

Env: DJANGO_SETTINGS_MODULE, LABEL_STUDIO_USERNAME, LABEL_STUDIO_PASSWORD (generated and printed
once when empty), LABEL_STUDIO_USER_TOKEN (at least 6 characters; never printed),
LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN (lets `Authorization: Token ...` work; default true).
"""
import os
import pathlib
import secrets
import shutil
import sys

# The migrations (Label Studio's and ours), applied at image build time by ls_template.py: a first
# start copies the SQLite file, or loads the PostgreSQL dump, instead of spending most of a minute
# migrating from nothing. `migrate` then finds nothing to do (or only what a newer image brings).
TEMPLATE = pathlib.Path(sys.prefix) / "share" / "pachstudio" / "label_studio.sqlite3"
PG_TEMPLATE = pathlib.Path(sys.prefix) / "share" / "pachstudio" / "label_studio.pg.sql"


def fail(message: str) -> None:
    print(f"\npachstudio: error: {message}\n", file=sys.stderr)
    sys.exit(1)


def truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def uses_default_sqlite() -> bool:
    db = os.environ.get("LABEL_STUDIO_DJANGO_DB") or os.environ.get("DJANGO_DB") or "default"
    named = any(os.environ.get(k) for k in ("LABEL_STUDIO_DATABASE_NAME", "HEARTEX_DATABASE_NAME", "DATABASE_NAME"))
    return db in ("default", "sqlite") and not named


def seed_sqlite() -> bool:
    """A new SQLite database starts as a copy of the build-time one (same Label Studio release)."""
    data_dir = pathlib.Path(os.environ["LABEL_STUDIO_BASE_DATA_DIR"])
    db = data_dir / "label_studio.sqlite3"
    if not TEMPLATE.exists() or db.exists():
        return False
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = db.with_suffix(".sqlite3.tmp")
    shutil.copyfile(TEMPLATE, tmp)
    os.replace(tmp, db)
    return True


def seed_postgresql() -> bool:
    """A PostgreSQL database without Django's tables starts from the build-time dump, in one
    transaction: if it does not load (an old server, tables of another program), nothing of it
    stays and `migrate` builds the schema the slow way. Plain psycopg: no Django start-up."""
    import db_check
    import psycopg

    db_check.main()  # waits for the database, or stops the start saying why
    if not PG_TEMPLATE.exists():
        return False
    with psycopg.connect(**db_check.connect_args()) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_name = 'django_migrations'"
        ).fetchone()
        if found:
            return False
        try:
            with conn.transaction():
                conn.execute(PG_TEMPLATE.read_text(encoding="utf-8"))  # no parameters: many statements
            return True
        except psycopg.Error as e:
            reason = " ".join(str(e).split())[:300]
            print(f"pachstudio: the image's pre-migrated schema did not load ({reason}): migrating from nothing")
            return False


def ensure_secret_key() -> None:
    """Label Studio's SECRET_KEY (sessions, JWTs) made once, before any program starts: made by
    Label Studio itself, the first-setup program and gunicorn starting together could each append
    a different key to the same .env (as Label Studio does it: mode 600, appended)."""
    env_file = pathlib.Path(os.environ["LABEL_STUDIO_BASE_DATA_DIR"]) / ".env"
    if os.environ.get("SECRET_KEY") or (env_file.exists() and "SECRET_KEY=" in env_file.read_text()):
        return
    env_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(env_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"\nSECRET_KEY={secrets.token_urlsafe(50)}\n")


def seed() -> bool:
    """True when the database was new and now holds the image's migrated schema."""
    if uses_default_sqlite():
        seeded = seed_sqlite()
    elif (os.environ.get("LABEL_STUDIO_DJANGO_DB") or os.environ.get("DJANGO_DB")) == "postgresql":
        seeded = seed_postgresql()
    else:
        seeded = False
    if seeded:
        print("pachstudio: new database from the image's pre-migrated schema", flush=True)
    return seeded


def first_user_settings() -> tuple[str, str, str]:
    """The first user's email, password and token (checked); with `--secrets FILE` the password
    and token come from that file (NUL-separated, written by the entrypoint), deleted once read."""
    username = os.environ.get("LABEL_STUDIO_USERNAME") or "admin@localhost"
    password = os.environ.get("LABEL_STUDIO_PASSWORD") or ""
    token = os.environ.get("LABEL_STUDIO_USER_TOKEN") or ""
    if "--secrets" in sys.argv:
        path = pathlib.Path(sys.argv[sys.argv.index("--secrets") + 1])
        password, token = (path.read_bytes().split(b"\0") + [b"", b""])[:2]
        password, token = password.decode(), token.decode()
        path.unlink()
    if "@" not in username:
        fail(f"LABEL_STUDIO_USERNAME must be an email address (Label Studio logs in by email), got {username!r}")
    if token and len(token) < 6:
        fail("LABEL_STUDIO_USER_TOKEN must be at least 6 characters long")
    return username, password, token


def main() -> None:
    username, password, token = first_user_settings()
    legacy_tokens = truthy(os.environ.get("LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN", "true"))
    seed()
    import label_studio

    sys.path.insert(0, str(pathlib.Path(label_studio.__file__).parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pachstudio.labelstudio.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    call_command("migrate", "--no-color", verbosity=0)

    from organizations.models import Organization
    from rest_framework.authtoken.models import Token
    from users.models import User

    generated = False
    with transaction.atomic():
        user = User.objects.filter(email=username).first()
        if user is None:
            if not password:
                password = secrets.token_urlsafe(18)
                generated = True
            user = User.objects.create_user(email=username, password=password)
            user.is_staff = True
            user.is_superuser = True
            user.save()
            if token:
                Token.objects.filter(user=user).delete()
                Token.objects.create(user=user, key=token)
            created = True
        else:
            created = False
        org = Organization.objects.first()
        if org is None:
            org = Organization.create_organization(
                created_by=user, title="Label Studio", legacy_api_tokens_enabled=legacy_tokens
            )
        else:
            org.add_user(user)
        user.active_organization = org
        user.save(update_fields=["active_organization"])
        # Label Studio makes the organization's session policy on first use, inside a request's
        # middleware: under concurrent first requests that insert meets a locked SQLite and the
        # request fails with a 500 no retry covers. Made here, before any request.
        _ = org.session_timeout_policy

    if created:
        print(f"pachstudio: created the Label Studio user {username}")
    else:
        print(f"pachstudio: the Label Studio user {username} exists: password and token unchanged")
    if generated:
        line = "=" * 72
        print(
            f"\n{line}\n"
            "  No LABEL_STUDIO_PASSWORD was given, so one was generated. It is shown ONCE:\n\n"
            f"    user:     {username}\n"
            f"    password: {password}\n\n"
            "  Change it in Label Studio (Account & Settings), or pass LABEL_STUDIO_PASSWORD\n"
            "  (or LABEL_STUDIO_PASSWORD_FILE) on the first start of a new /data volume.\n"
            f"{line}\n",
            flush=True,
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--seed"]:
        # Before the programs start: the settings checked, a new database given the migrated schema.
        # Exit 0: the database is new and now migrated; 3: it was there already (or did not load).
        first_user_settings()
        ensure_secret_key()
        sys.exit(0 if seed() else 3)
    main()
    from django.db import connections

    connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    # Label Studio leaves background threads behind that hold a plain exit for seconds.
    os._exit(0)
