"""The daemons' reusable connection threads (daemons/threadpool.py)."""

from __future__ import annotations

import threading
import time

from pysendmail.daemons.threadpool import ThreadPool


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_every_job_runs_at_once_even_when_all_threads_are_busy():
    pool = ThreadPool("test")
    release = threading.Event()
    started: list[int] = []
    lock = threading.Lock()

    def job(number: int) -> None:
        with lock:
            started.append(number)
        release.wait(10)

    for number in range(20):
        pool.submit(job, number)
    # No job waits for another to finish: twenty threads for twenty blocked jobs.
    _wait_until(lambda: len(started) == 20)
    assert pool.threads == 20
    release.set()


def test_finished_threads_serve_the_next_jobs():
    pool = ThreadPool("test")
    done = threading.Semaphore(0)
    names: set[str] = set()

    def job() -> None:
        names.add(threading.current_thread().name)
        done.release()

    for _round in range(50):
        pool.submit(job)
        assert done.acquire(timeout=10)
    # One job at a time: the one thread that finished took each next job.
    _wait_until(lambda: pool.threads == 1)
    assert len(names) == 1


def test_idle_threads_beyond_keep_idle_end():
    pool = ThreadPool("test", keep_idle=2)
    release = threading.Event()
    for _ in range(6):
        pool.submit(release.wait, 10)
    _wait_until(lambda: pool.threads == 6)
    release.set()
    _wait_until(lambda: pool.threads == 2)


def test_a_failing_job_does_not_lose_its_thread(caplog):
    pool = ThreadPool("test")
    done = threading.Event()

    def failing() -> None:
        raise RuntimeError("job failed")

    pool.submit(failing)
    _wait_until(lambda: "job failed" in caplog.text)
    # The thread that ran it is counted idle and takes the next job.
    pool.submit(done.set)
    assert done.wait(10)
    assert pool.threads == 1
