"""The collector: frees file contents no commit references any more (after deleting repos, projects,
squashing or dropping commit sets, and the leftovers of cut uploads), and gives the freed database
pages back to the file system.

Mark and sweep. Contents are referenced only by `deltas` rows, and every commit that still exists
keeps its deltas, so "live" is exactly the set of hashes in `deltas`. Why it is safe:

- Against concurrent writes. A write learns a content's digest before any row refers to it, and
  pins it then (`blobs.BlobPins`), before it checks whether the content is already stored; it
  unpins only after its transaction has committed or failed. The collector first starts
  retaining released pins, then marks (the live hashes, read inside one write transaction, so no
  write commits during the mark), then sweeps, deleting each content only if it is neither live nor
  pinned nor released since the collection began, the check and the delete under the pins' lock.
  So a content a write references was either live at the mark (its transaction committed before),
  or pinned or retained at the sweep (it committed after); and a write that pins a content after
  the sweep deleted it finds it missing and stores it again. A copy, which references contents of
  another commit without writing them, pins them and then checks they still exist.
- Against crashes (kill -9 at any moment). The collector deletes only what a committed state of the
  database no longer references, and its mark transaction commits with synchronous=FULL, which
  makes that state (and every commit before it) durable before the first delete: no later restart
  can bring back a reference to a deleted content. A collection cut short leaves some garbage; the
  collection every start runs frees it. After a crash no write is in flight, so the start's
  collection needs no pins from before it. Inline contents are deleted in the mark's transaction
  itself, so they go all together or not at all.

The database shrinks through incremental auto-vacuum (set on new data dirs; a small data dir made
before is converted once at start) and a WAL checkpoint that truncates the log.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading

from .blobs import BlobStore

log = logging.getLogger("pachstudio.pfs_server.pfs.gc")

SETTLE = 0.5  # seconds without new requests before a collection starts: a burst of deletes makes one run
CONVERT_MAX = 256 << 20  # databases up to this size are vacuumed once at start to enable auto-vacuum


class Collector:
    """Collects for the store whose database is `db_path` and contents `blobs`; `write_lock` is the
    store's, so its writers and the collector's mark take turns."""

    def __init__(self, db_path: str, blobs: BlobStore, write_lock):
        self.db_path, self.blobs, self.write_lock = db_path, blobs, write_lock
        self.requested = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # one collection at a time
        self.thread = None
        self.runs = 0
        self._db = None

    # -- the background thread ----------------------------------------------------------------
    def start(self) -> None:
        """Runs a collection now (in the background) and after every request."""
        if self.thread is None:
            self.requested.set()
            self.thread = threading.Thread(target=self._loop, name="pfs-gc", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.requested.set()
        if self.thread is not None:
            self.thread.join(30)

    def request(self) -> None:
        self.requested.set()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.requested.wait()
            while self.requested.is_set() and not self.stopping.is_set():  # settle
                self.requested.clear()
                self.stopping.wait(SETTLE)
            if self.stopping.is_set():
                return
            try:
                self.collect()
            except Exception:  # the next request tries again; serving goes on
                log.exception("collecting unreferenced contents failed")

    # -- one collection -----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # the mark's commit syncs the log (see above)
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS live(hash TEXT PRIMARY KEY) WITHOUT ROWID")
        return self._db

    def collect(self) -> dict:
        """One mark and sweep; returns what it freed: {"inline": n, "files": n, "bytes": n}."""
        with self.lock:
            pins = self.blobs.pins
            pins.begin_collection()
            try:
                freed = self._mark_and_sweep(pins)
            finally:
                pins.end_collection()
            self._shrink()
            self.runs += 1
            if freed["inline"] or freed["files"]:
                log.info(
                    "freed %d contents (%d bytes in files) no commit references",
                    freed["inline"] + freed["files"],
                    freed["bytes"],
                )
            return freed

    def _mark_and_sweep(self, pins) -> dict:
        db = self._conn()
        with self.write_lock:  # the store's writers and ours take turns, as among themselves
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM live")
                db.execute("INSERT OR IGNORE INTO live SELECT hash FROM deltas WHERE hash IS NOT NULL")
                pinned = json.dumps(pins.snapshot())
                inline = db.execute(
                    "DELETE FROM inline_blobs WHERE hash NOT IN (SELECT hash FROM live) "
                    "AND hash NOT IN (SELECT value FROM json_each(?))",
                    (pinned,),
                ).rowcount
                db.execute("INSERT OR REPLACE INTO meta VALUES('gc_marked', strftime('%s','now'))")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        files, size = 0, 0
        root = self.blobs.root
        for prefix in sorted(os.listdir(root)):
            folder = os.path.join(root, prefix)
            if len(prefix) != 2 or not os.path.isdir(folder):
                continue  # tmp/: uploads in flight
            names = os.listdir(folder)
            digests = [prefix + n for n in names]
            dead = [
                r[0]
                for r in db.execute(
                    "SELECT value FROM json_each(?) WHERE value NOT IN (SELECT hash FROM live)", (json.dumps(digests),)
                )
            ]
            for digest in dead:
                try:
                    n = os.path.getsize(self.blobs.path(digest))
                except FileNotFoundError:
                    continue
                if self.blobs.remove_unless_pinned(digest):
                    files, size = files + 1, size + n
            if len(dead) == len(names):
                with pins.lock:  # a writer re-creates the folder if it needs it (BlobStore._place)
                    try:
                        os.rmdir(folder)
                    except OSError:
                        pass
        return {"inline": inline, "files": files, "bytes": size}

    def _shrink(self) -> None:
        """Freed pages back to the file system, the log truncated (both skipped while busy)."""
        db = self._conn()
        try:
            with self.write_lock:
                db.executescript("PRAGMA incremental_vacuum;")  # run to the end (one execute() step frees one page)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as e:
            log.info("database not shrunk now: %s", e)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def enable_auto_vacuum(db_path: str) -> None:
    """An existing database without incremental auto-vacuum, up to CONVERT_MAX, is vacuumed once to
    get it (a bigger one keeps reusing its free pages instead). New ones get it from Store._conn."""
    if not os.path.exists(db_path) or os.path.getsize(db_path) == 0:
        return
    db = sqlite3.connect(db_path, isolation_level=None, timeout=60)
    try:
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
            return
        if os.path.getsize(db_path) > CONVERT_MAX:
            log.info("database %s kept without auto-vacuum (too big to convert at start)", db_path)
            return
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("VACUUM")
    finally:
        db.close()
