"""Label Studio set-up for the appliance: migrations, the organization, the first user.

Run by docker-entrypoint.sh on the first start on a /data (and after an image brings new
migrations). Idempotent: an existing user keeps its password and token.

Env: DJANGO_SETTINGS_MODULE, LABEL_STUDIO_USERNAME, LABEL_STUDIO_PASSWORD (generated and printed
once when empty), LABEL_STUDIO_USER_TOKEN (at least 6 characters; never printed),
LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN (lets `Authorization: Token ...` work; default true).
"""
import os
import pathlib
import secrets
import shutil
import sys

import label_studio

LS_PATH = str(pathlib.Path(label_studio.__file__).parent)
# Label Studio's own migrations, applied at image build time to an empty SQLite database: a first
# start copies it instead of spending most of a minute migrating from nothing.
TEMPLATE = pathlib.Path(sys.prefix) / "share" / "pachstudio" / "label_studio.sqlite3"


def fail(message: str) -> None:
    print(f"\npachstudio: error: {message}\n", file=sys.stderr)
    sys.exit(1)


def truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def uses_default_sqlite() -> bool:
    db = os.environ.get("LABEL_STUDIO_DJANGO_DB") or os.environ.get("DJANGO_DB") or "default"
    named = any(os.environ.get(k) for k in ("LABEL_STUDIO_DATABASE_NAME", "HEARTEX_DATABASE_NAME", "DATABASE_NAME"))
    return db in ("default", "sqlite") and not named


def seed_from_template() -> None:
    """A new SQLite database starts as a copy of the build-time one (same Label Studio release)."""
    data_dir = pathlib.Path(os.environ["LABEL_STUDIO_BASE_DATA_DIR"])
    db = data_dir / "label_studio.sqlite3"
    if TEMPLATE.exists() and uses_default_sqlite() and not db.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = db.with_suffix(".sqlite3.tmp")
        shutil.copyfile(TEMPLATE, tmp)
        os.replace(tmp, db)
        print("pachstudio: new database from the image's pre-migrated Label Studio schema")


def main() -> None:
    username = os.environ.get("LABEL_STUDIO_USERNAME") or "admin@localhost"
    password = os.environ.get("LABEL_STUDIO_PASSWORD") or ""
    token = os.environ.get("LABEL_STUDIO_USER_TOKEN") or ""
    legacy_tokens = truthy(os.environ.get("LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN", "true"))
    if "@" not in username:
        fail(f"LABEL_STUDIO_USERNAME must be an email address (Label Studio logs in by email), got {username!r}")
    if token and len(token) < 6:
        fail("LABEL_STUDIO_USER_TOKEN must be at least 6 characters long")

    seed_from_template()
    sys.path.insert(0, LS_PATH)
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
    main()
    from django.db import connections

    connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    # Label Studio leaves background threads behind that hold a plain exit for seconds.
    os._exit(0)
