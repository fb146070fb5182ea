"""Gunicorn for Label Studio in the appliance (sized for a 2-core machine; env can change it).

Threads rather than many processes: a Label Studio worker holds about 300 MB, and most requests
wait on SQLite, the mount server or /pfs rather than on the CPU. The long timeout leaves room for
a storage sync, which Label Studio's open-source build runs inside the HTTP request.
"""
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
# docker stop gives the whole container 10 s by default: finish requests quickly, then go.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "5"))
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Label Studio's own request logging is enough; keep gunicorn's access log compact.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
worker_tmp_dir = "/dev/shm"
# Import Label Studio once in the master and fork the workers from it: a restart is served sooner
# (one Django start-up instead of one per worker competing for 2 cores) and memory is shared.
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").lower() in ("1", "true", "yes")


def pre_fork(server, worker):
    # Never carry a database connection (SQLite file handle, PostgreSQL socket) across fork.
    from django.db import connections

    connections.close_all()
