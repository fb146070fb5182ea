"""Run a storage's sync outside the HTTP request, in a thread of the serving process.

Label Studio's open-source build syncs inside the request (no Redis), which meets the gunicorn
timeout on big repos. Here the request only queues; the thread records in_progress, then the
counts or the failure on the storage itself, which is what the storage card shows.

A running job holds an exclusive lock on a file of its storage (under Label Studio's data dir) for
its whole run. That one fact answers "is a job running?" for every gunicorn worker: two Syncs
pressed together claim it one after the other (the second finds it held and starts nothing), and a
job that waits long on the cluster is not taken for dead. The kernel drops the lock when a worker
dies, so a killed job never blocks the next one.
"""
import fcntl
import logging
import os
import threading
import traceback

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from .mount_client import MountServerError

logger = logging.getLogger(__name__)

_guard = threading.Lock()
_running: dict = {}


def _claim(storage_class, storage_id):
    """The job lock of a storage, or None when a job (in any worker) holds it."""
    folder = os.path.join(settings.BASE_DATA_DIR, 'pachyderm-jobs')
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, f'{storage_class.__name__}-{storage_id}.lock'), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def job_running(storage) -> bool:
    """A job of this storage runs now, in this worker or another."""
    fd = _claim(storage.__class__, storage.id)
    if fd is None:
        return True
    os.close(fd)
    return False


def start(storage, method: str) -> bool:
    """Queue `storage.<method>()`; False when this storage already has a job running."""
    key = (storage.__class__.__name__, storage.id)
    with _guard:
        thread = _running.get(key)
        if thread is not None and thread.is_alive():
            return False
        lock = _claim(storage.__class__, storage.id)
        if lock is None:
            return False
        try:
            storage.refresh_from_db()
            storage.info_set_queued()
            if storage.traceback:  # the card must not keep an earlier job's failure once this one runs
                storage.traceback = None
                storage.save(update_fields=['traceback'])
            thread = threading.Thread(target=_run, args=(storage.__class__, storage.id, method, lock),
                                      name=f'pachyderm-{method}-{storage.id}', daemon=True)
            _running[key] = thread
            thread.start()
        except BaseException:
            os.close(lock)
            raise
    return True


def _run(storage_class, storage_id, method, lock):
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
        os.close(lock)  # the job is over: the next Sync may start


def failure_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        detail = exc.detail
        if isinstance(detail, list):
            return '\n'.join(str(d) for d in detail)
        return str(detail)
    if isinstance(exc, MountServerError):
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
