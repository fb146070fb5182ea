"""Run a storage's sync outside the HTTP request, in a thread of the serving process.

Label Studio's open-source build syncs inside the request (no Redis), which meets the gunicorn
timeout on big repos. Here the request only queues; the thread records in_progress, then the
counts or the failure on the storage itself, which is what the storage card shows.

A running job holds an exclusive lock on a file of its storage (under Label Studio's data dir) for
its whole run. That one fact answers "is a job running?" for every gunicorn worker: two Syncs
pressed together claim it one after the other, and a job that waits long on the cluster is not
taken for dead. The kernel drops the lock when a worker dies, so a killed job never blocks the next one.

No Sync is dropped: one pressed while a job of its storage runs (staging, a Source sync, a Target
Sync; any worker) writes a request file next to the lock (`<Class>-<id>.queued`, holding the method)
and the answer and card say "queued after the running job" (status queued, meta.queued). The job's
thread, still holding the lock, consumes the request when it ends and runs it; several presses
meanwhile rewrite the same file, so they make one more run. The file survives a restart: the first
request a restarted process serves runs what was left queued (`resume_requests`).
"""

import contextlib
import fcntl
import logging
import os
import threading
import traceback

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from ..mount_client import MountServerError

logger = logging.getLogger(__name__)

_guard = threading.Lock()
_running: dict = {}


QUEUED_NOTE = "Sync queued after the running job"
STARTED, QUEUED = "started", "queued"


def _folder():
    folder = os.path.join(settings.BASE_DATA_DIR, "pachyderm-jobs")
    os.makedirs(folder, exist_ok=True)
    return folder


def _claim(storage_class, storage_id):
    """The job lock of a storage, or None when a job (in any worker) holds it."""
    fd = os.open(os.path.join(_folder(), f"{storage_class.__name__}-{storage_id}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _request_path(storage_class, storage_id) -> str:
    return os.path.join(_folder(), f"{storage_class.__name__}-{storage_id}.queued")


def queued_method(storage):
    """The method a Sync pressed during a running job asked for, or None."""
    try:
        with open(_request_path(storage.__class__, storage.id)) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def _request(storage_class, storage_id, method):
    """Persist "run <method> once the running job ends": one file, so several presses make one run,
    and it survives a restart."""
    path = _request_path(storage_class, storage_id)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w") as f:
        f.write(method)
    os.replace(tmp, path)


def _take(storage_class, storage_id):
    """Consume the queued request (only the lock holder does): its method, or None."""
    path = _request_path(storage_class, storage_id)
    try:
        with open(path) as f:
            method = f.read().strip()
        os.remove(path)
    except FileNotFoundError:
        return None
    return method or None


def job_running(storage) -> bool:
    """A job of this storage runs now, in this worker or another."""
    fd = _claim(storage.__class__, storage.id)
    if fd is None:
        return True
    os.close(fd)
    return False


@contextlib.contextmanager
def exclusive(storage):
    """Run something in the request while no job of this storage runs: yields False (and holds
    nothing) when one runs or is queued; otherwise holds the job lock meanwhile, so a Sync pressed
    then is queued, and starts it once done."""
    cls, storage_id = storage.__class__, storage.id
    with _guard:
        lock = _claim(cls, storage_id)
    if lock is None or queued_method(storage):
        if lock is not None:
            os.close(lock)
        yield False
        return
    try:
        yield True
    finally:
        os.close(lock)
        method = queued_method(storage)  # a Sync pressed meanwhile: it runs now
        if method:
            start(storage, method)


def mark_queued(storage):
    """What the card shows while a Sync waits for the running job: status queued, meta.queued."""
    fresh = storage.__class__.objects.filter(pk=storage.pk)
    meta = dict((fresh.values_list("meta", flat=True).first() or {}), queued=QUEUED_NOTE)
    fresh.update(status=storage.Status.QUEUED, meta=meta)


def start(storage, method: str) -> str:
    """Queue `storage.<method>()` in a thread: STARTED, or QUEUED when a job of this storage runs now
    (in any worker); then it runs once that job ends, and presses meanwhile add no further run."""
    cls, storage_id = storage.__class__, storage.id
    with _guard:
        lock = _claim(cls, storage_id)
        if lock is None:
            mark_queued(storage)  # before the request: a holder that takes it at once then resets the card
            _request(cls, storage_id, method)
            lock = _claim(cls, storage_id)  # the job may have ended before it could see the request
            if lock is None:
                return QUEUED
            method = _take(cls, storage_id) or method
        elif queued_method(storage) == method:
            _take(cls, storage_id)  # a request left from before a restart: this run answers it
        try:
            _prepare(storage)
            _spawn(cls, storage_id, method, lock)
        except BaseException:
            os.close(lock)
            raise
    return STARTED


def _prepare(storage):
    storage.refresh_from_db()
    storage._update_queued_status()  # Label Studio's QUEUED reset, whatever the status was
    if storage.traceback:  # the card must not keep an earlier job's failure once this one runs
        storage.traceback = None
        storage.save(update_fields=["traceback"])


def _spawn(cls, storage_id, method, lock):
    thread = threading.Thread(
        target=_pump, args=(cls, storage_id, method, lock), name=f"pachyderm-{method}-{storage_id}", daemon=True
    )
    _running[(cls.__name__, storage_id)] = thread
    thread.start()


def resume_requests():
    """On start: requests queued before a restart (or by a worker that died) run now."""
    from django.apps import apps

    folder = _folder()
    for name in os.listdir(folder):
        if not name.endswith(".queued"):
            continue
        class_name, _, storage_id = name[: -len(".queued")].rpartition("-")
        try:
            cls = apps.get_model("io_storages_pachyderm", class_name)
            storage = cls.objects.filter(id=int(storage_id)).first()
        except (LookupError, ValueError):
            continue
        if storage is None:
            _take(cls, int(storage_id))
            continue
        with _guard:
            lock = _claim(cls, storage.id)
            if lock is None:
                continue  # a running job picks it up when it ends
            method = _take(cls, storage.id)
            if method is None:
                os.close(lock)
                continue
            try:
                _prepare(storage)
                _spawn(cls, storage.id, method, lock)
            except BaseException:
                os.close(lock)
                raise
            logger.info("storage %s %s: running the %s queued before the restart", class_name, storage_id, method)


def _pump(storage_class, storage_id, method, lock):
    """Run the job, then every request queued meanwhile (one at a time), holding the lock
    throughout; release it only when no request is left. A request written just as the lock is
    released is seen by the re-check after it (or by its own presser, who claims the lock next)."""
    try:
        first = True
        while True:
            close_old_connections()
            _run(storage_class, storage_id, method, prepare=not first)
            first = False
            method = _take(storage_class, storage_id)
            if method is None:
                os.close(lock)
                lock = None
                if not os.path.exists(_request_path(storage_class, storage_id)):
                    return
                lock = _claim(storage_class, storage_id)
                if lock is None:
                    return  # another worker's job holds it and will see the request
                method = _take(storage_class, storage_id)
                if method is None:
                    return
    finally:
        connection.close()
        if lock is not None:
            os.close(lock)  # the job is over: the next Sync may start


def _run(storage_class, storage_id, method, prepare=False):
    storage = None
    try:
        storage = storage_class.objects.get(id=storage_id)
        if prepare:
            _prepare(storage)
        getattr(storage, method)()
    except storage_class.DoesNotExist:
        logger.info("storage %s %s was deleted before its %s ran", storage_class.__name__, storage_id, method)
    except Exception as exc:  # the card must show why, whatever failed
        if storage is not None:
            record_failure(storage, exc)
        else:
            logger.exception("storage %s %s: %s could not start", storage_class.__name__, storage_id, method)


def failure_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        detail = exc.detail
        if isinstance(detail, list):
            return "\n".join(str(d) for d in detail)
        return str(detail)
    if isinstance(exc, MountServerError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}\n\n{traceback.format_exc()}"


def record_failure(storage, exc: Exception):
    message = failure_message(exc)
    logger.warning(
        "Pachyderm storage %s (%s) failed: %s",
        storage.id,
        storage.__class__.__name__,
        message.splitlines()[0] if message else exc.__class__.__name__,
    )
    storage.refresh_from_db()
    storage.status = storage.Status.FAILED
    storage.traceback = message
    now = timezone.now()
    storage.meta = dict(storage.meta or {}, time_failure=str(now), error=message.splitlines()[0])
    storage.save(update_fields=["status", "traceback", "meta"])
