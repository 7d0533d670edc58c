"""Durable enqueue rate: messages per second through QueueStore with fsync, one thread
and several threads committing together (group commit of the directory fsync).

    python bench/queue_enqueue.py [--messages N] [--threads T]

Prints, for each mode, messages/s and directory fsyncs per message, and as a reference:
  fsync floor       write+fsync of a df and a qf per message, nothing else: the disk work
                    sendmail itself does per queued message with SuperSafe=True
  sendmail -odq     Debian's sendmail 8.17, one process per message (when it can be
                    fetched; unpacked, never installed, in its own network namespace)
Every message is checked afterwards (qf parses, df is whole).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import threading
import time

from queue_common import (
    BODY,
    HEADERS,
    envelope,
    office_config,
    real_sendmail,
    safe_workdir,
    sendmail_argv,
)

from pysendmail.queue.store import QueueStore


def enqueue_rate(queue_dir, messages: int, threads: int) -> tuple[float, float]:
    store = QueueStore(queue_dir)
    per_thread = messages // threads
    start_line = threading.Barrier(threads)

    def work(offset: int) -> None:
        start_line.wait()
        for i in range(per_thread):
            store.enqueue(envelope(offset + i), HEADERS, BODY, hostname="mail.example.com")

    workers = [threading.Thread(target=work, args=(n * per_thread,)) for n in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    done = per_thread * threads
    ids = store.queue_ids()
    assert len(ids) == done, (len(ids), done)
    for qid in ids[:: max(1, done // 50)]:
        store.read(qid)
        assert (queue_dir / f"df{qid}").read_bytes() == BODY
    return done / elapsed, store.syncer.fsync_count / done


def fsync_floor(workdir, messages: int) -> float:
    qf_bytes = b"V8\nT1\nK0\nN0\nP1\nSa\nRPFD:b\n.\n"
    start = time.perf_counter()
    for i in range(messages):
        for name, data in ((f"df{i}", BODY), (f"qf{i}", qf_bytes)):
            fd = os.open(workdir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
    return messages / (time.perf_counter() - start)


def sendmail_rate(workdir, messages: int) -> float | None:
    binary = real_sendmail()
    if binary is None or shutil.which("unshare") is None:
        return None
    cf = office_config(workdir)
    queue_dir = workdir / "sm-mqueue"
    queue_dir.mkdir(mode=0o700)
    message = b"From: Alice <alice@example.com>\nSubject: benchmark\n\n" + BODY
    argv = sendmail_argv(binary, cf, queue_dir, "-odq", "alice")
    start = time.perf_counter()
    for _ in range(messages):
        subprocess.run(argv, input=message, capture_output=True, check=True)
    elapsed = time.perf_counter() - start
    queued = [n for n in os.listdir(queue_dir) if n.startswith("qf")]
    return len(queued) / elapsed if len(queued) == messages else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    work = safe_workdir(".bench-enqueue-")
    try:
        for threads in (1, args.threads):
            queue_dir = work / f"q{threads}"
            queue_dir.mkdir(mode=0o700)
            rate, dir_syncs = enqueue_rate(queue_dir, args.messages, threads)
            print(
                f"QueueStore.enqueue, {threads} thread(s): {rate:8.0f} msg/s, "
                f"{dir_syncs:.2f} directory fsyncs per message"
            )
        floor_dir = work / "floor"
        floor_dir.mkdir()
        floor = fsync_floor(floor_dir, args.messages)
        print(f"fsync floor (df+qf fsync, 1 thread): {floor:8.0f} msg/s")
        rate = sendmail_rate(work, min(args.messages, 300))
        if rate is None:
            print("sendmail -odq: not measured (sendmail-bin or unshare unavailable)")
        else:
            print(f"sendmail -odq, one process per message: {rate:8.0f} msg/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
