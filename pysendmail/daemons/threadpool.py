"""Threads kept for reuse by the daemons' connections.

socketserver's ThreadingMixIn starts a new thread for every connection: a clone, a stack
mapped and unmapped, and a start handshake, about 60 us of CPU each time. `ThreadPool`
keeps finished threads waiting for the next job instead; a job that finds no idle thread
starts one, so there are never fewer threads than running jobs, and at most `keep_idle`
threads stay idle after a burst.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("pysendmail.threadpool")


class ThreadPool:
    def __init__(self, name: str, keep_idle: int = 100) -> None:
        self.name = name
        self.keep_idle = keep_idle
        self._jobs: queue.SimpleQueue[tuple[Callable[..., object], tuple]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job, not yet promised one
        self.threads = 0  # threads alive

    def submit(self, job: Callable[..., object], *args: object) -> None:
        """Run `job(*args)` in an idle thread, or in a new one when none is idle."""
        with self._lock:
            start = self._idle == 0
            if start:
                self.threads += 1
            else:
                self._idle -= 1
        self._jobs.put((job, args))
        if start:
            thread = threading.Thread(
                target=self._serve, name=f"{self.name}-{self.threads}", daemon=True
            )
            try:
                thread.start()
            except BaseException:
                with self._lock:
                    self.threads -= 1
                raise

    def _serve(self) -> None:
        while True:
            job, args = self._jobs.get()
            try:
                job(*args)
            except Exception:
                # The thread goes on: the pool has counted it as one that takes jobs.
                log.exception("%s: a connection's thread failed", self.name)
            finally:
                with self._lock:
                    retire = self._idle >= self.keep_idle
                    if retire:
                        self.threads -= 1
                    else:
                        self._idle += 1
            if retire:
                return
