"""Run a storage's sync outside the HTTP request, in a thread of the serving process.

Label Studio's open-source build syncs inside the request (no Redis), which meets the gunicorn
timeout on big repos. Here the request only queues; the thread records in_progress, then the
counts or the failure on the storage itself, which is what the storage card shows.
"""
import logging
import threading
import traceback
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from .mount_api import MountError

logger = logging.getLogger(__name__)

_guard = threading.Lock()
_running: dict = {}


def busy_elsewhere(storage) -> bool:
    """Another worker process runs this storage's job: it pinged recently. A job that stopped
    pinging (a killed worker) does not block a new one."""
    if storage.status not in (storage.Status.QUEUED, storage.Status.IN_PROGRESS):
        return False
    meta = storage.meta or {}
    last = meta.get('time_last_ping') or meta.get('time_queued')
    if not last:
        return False
    age = (timezone.now() - datetime.fromisoformat(last)).total_seconds()
    return age < settings.STORAGE_IN_PROGRESS_TIMER * 5


def start(storage, method: str) -> bool:
    """Queue `storage.<method>()`; False when this storage already has a job running."""
    key = (storage.__class__.__name__, storage.id)
    with _guard:
        thread = _running.get(key)
        if thread is not None and thread.is_alive():
            return False
        storage.refresh_from_db()
        if busy_elsewhere(storage):
            return False
        storage.info_set_queued()
        thread = threading.Thread(target=_run, args=(storage.__class__, storage.id, method),
                                  name=f'pachyderm-{method}-{storage.id}', daemon=True)
        _running[key] = thread
    thread.start()
    return True


def wait(storage, timeout=None):
    """For callers that must not overlap a running job (and for tests in one process)."""
    thread = _running.get((storage.__class__.__name__, storage.id))
    if thread is not None:
        thread.join(timeout)


def _run(storage_class, storage_id, method):
    close_old_connections()
    storage = None
    try:
        storage = storage_class.objects.get(id=storage_id)
        getattr(storage, method)()
    except Exception as exc:  # the card must show why, whatever failed
        if storage is not None:
            record_failure(storage, exc)
        else:
            logger.exception('storage %s %s vanished before its job started', storage_class.__name__, storage_id)
    finally:
        connection.close()


def failure_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        detail = exc.detail
        if isinstance(detail, list):
            return '\n'.join(str(d) for d in detail)
        return str(detail)
    if isinstance(exc, MountError):
        return str(exc)
    return f'{exc.__class__.__name__}: {exc}\n\n{traceback.format_exc()}'


def record_failure(storage, exc: Exception):
    message = failure_message(exc)
    logger.warning('Pachyderm storage %s (%s) failed: %s', storage.id, storage.__class__.__name__,
                   message.splitlines()[0] if message else exc.__class__.__name__)
    storage.refresh_from_db()
    storage.status = storage.Status.FAILED
    storage.traceback = message
    now = timezone.now()
    storage.meta = dict(storage.meta or {}, time_failure=str(now), error=message.splitlines()[0])
    storage.save(update_fields=['status', 'traceback', 'meta'])
