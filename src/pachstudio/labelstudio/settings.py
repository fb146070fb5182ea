"""Label Studio's own settings plus the Pachyderm storage app; no edit of Label Studio's files.

Label Studio's settings module reads `django.conf.settings` while it loads, so a plain
`from ... import *` fails: the file is executed in this module's namespace instead.
"""

import os
import sys

import label_studio

_LS_DIR = os.path.dirname(label_studio.__file__)
if _LS_DIR not in sys.path:
    # Label Studio imports its apps as top-level packages (`core`, `tasks`, ...).
    sys.path.insert(0, _LS_DIR)

_LS_SETTINGS = os.path.join(_LS_DIR, "core", "settings", "label_studio.py")
with open(_LS_SETTINGS) as _f:
    exec(compile(_f.read(), _LS_SETTINGS, "exec"), globals())

INSTALLED_APPS = list(INSTALLED_APPS) + ["pachstudio.labelstudio.apps.PachydermStorageConfig"]  # noqa: F821
GET_STORAGE_LIST = "pachstudio.labelstudio.storage.storage_list.get_storage_list"
IO_STORAGES_IMPORT_LINK_NAMES = list(IO_STORAGES_IMPORT_LINK_NAMES) + [  # noqa: F821
    "io_storages_pachyderm_pachydermimportstoragelink",
]
ROOT_URLCONF = "pachstudio.labelstudio.urls"
# "Task history" and "Versions" links on the Data Manager and labeling pages (web/data_manager_links.py
# says why not a bundle patch)
MIDDLEWARE = list(MIDDLEWARE) + ["pachstudio.labelstudio.web.data_manager_links.DataManagerLinksMiddleware"]  # noqa: F821

PACHSTUDIO_MOUNT_API = os.environ.get("PACHSTUDIO_MOUNT_API", "http://127.0.0.1:9002")
PACHSTUDIO_MOUNT_DIR = os.environ.get("PACHSTUDIO_MOUNT_DIR", "/pfs")
# Seconds a call to the mount server may take before the storage reports it unreachable.
PACHSTUDIO_MOUNT_TIMEOUT = float(os.environ.get("PACHSTUDIO_MOUNT_TIMEOUT", "120"))
# Largest JSON tasks file a Source sync parses (MB); bigger ones are skipped with the reason.
PACHSTUDIO_MAX_JSON_MB = int(os.environ.get("PACHSTUDIO_MAX_JSON_MB", "128"))
# Seconds a per-commit view mount (`ls_at_`) may stay unused before the mount server unmounts it.
PACHSTUDIO_VIEW_IDLE = int(os.environ.get("PACHSTUDIO_VIEW_IDLE", "600"))

# SQLite (the default database): a transaction that reads first and writes later (Django's delete
# collector, get_or_create) fails at once with "database is locked" when another writer went
# first; Label Studio's retry middleware then sleeps 1 s, 1.5 s, ... per attempt. Under 8
# concurrent annotators nearly every annotation delete went that way. BEGIN IMMEDIATE takes the
# write lock up front and waits for it (up to `timeout` seconds) instead.
if DATABASES["default"].get("ENGINE") == "django.db.backends.sqlite3":  # noqa: F821
    DATABASES["default"].setdefault("OPTIONS", {}).update(  # noqa: F821
        {"transaction_mode": "IMMEDIATE", "timeout": float(os.environ.get("PACHSTUDIO_SQLITE_TIMEOUT", "30"))}
    )

# PostgreSQL: Label Studio opens a new connection for every request (CONN_MAX_AGE 0), and each one
# costs a backend process and a SCRAM password exchange, more than a save's own queries. Keep a
# gunicorn thread's connection for a minute; the health check replaces one the server dropped (a
# database restart) instead of failing the request.
if DATABASES["default"].get("ENGINE") == "django.db.backends.postgresql":  # noqa: F821
    DATABASES["default"].update({"CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True})  # noqa: F821
