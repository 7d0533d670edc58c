"""How long reading the configuration takes.

1. In process: `parse_cf` and `translate` of the largest fixture cf (median of N runs,
   after one warm-up run that also builds the Lark parser).
2. Start-up: a fresh interpreter that calls `load_config()` on that cf with a warm cache,
   beside `python3 -c pass` (median and minimum of R runs each), and the difference:
   what reading the configuration adds to every `sendmail` invocation.

    python bench/config_translate.py [--runs N] [--starts R]

The fixture cf is copied with @ORACLE@ filled in; the cache goes to a temporary
XDG_CACHE_HOME, removed afterwards. The start-up runs import a byte-compiled copy of
the package (as an installed one is), even when PYTHONDONTWRITEBYTECODE is set here.
Besides wall time it reports the children's CPU time, which a busy machine inflates less.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pysendmail.config.cfparse import parse_cf  # noqa: E402
from pysendmail.config.translate import translate  # noqa: E402
from tests.conftest import FIXTURES_SRC  # noqa: E402


def materialise(dest: Path) -> Path:
    """A copy of the fixture configs with @ORACLE@ filled in; returns the largest cf."""
    root = dest / "sendmail-8.17"
    shutil.copytree(FIXTURES_SRC / "configs", root / "configs")
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if b"@ORACLE@" in data:
                path.write_bytes(data.replace(b"@ORACLE@", str(root).encode()))
    return max(root.glob("configs/*/*.cf"), key=lambda cf: cf.stat().st_size)


def in_process(cf: Path, runs: int) -> tuple[float, float]:
    text = cf.read_text()
    translate(cf, hostname="mail.example.com")  # warm-up: builds the Lark parser
    parse_times, translate_times = [], []
    for _ in range(runs):
        start = time.perf_counter()
        parse_cf(text, str(cf))
        parse_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        translate(cf, hostname="mail.example.com")
        translate_times.append(time.perf_counter() - start)
    return statistics.median(parse_times) * 1000, statistics.median(translate_times) * 1000


def start_times(argv: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) milliseconds of each run."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True)
        wall.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        cpu.append(used * 1000)
    return wall, cpu


def compiled_copy(dest: Path) -> Path:
    """The package copied to `dest` and byte-compiled; returns the directory to import from."""
    shutil.copytree(REPO / "pysendmail", dest / "pysendmail")
    compileall.compile_dir(dest / "pysendmail", quiet=1)
    return dest


# What the sendmail command line imports anyway (cli/runtime.py imports the model).
MODEL_ONLY = "import pysendmail.config.model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of the start-up runs, e.g. a clean venv's (python3 -m venv DIR)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cf = materialise(Path(tmp))
        lines = len(cf.read_text().splitlines())
        parse_ms, translate_ms = in_process(cf, args.runs)
        print(f"largest fixture cf: {cf.parent.name}/{cf.name}, {lines} lines")
        print(f"parse_cf   median {parse_ms:7.1f} ms")
        print(f"translate  median {translate_ms:7.1f} ms  (parse + classes, options, ...)")

        site = compiled_copy(Path(tmp) / "site")
        env = dict(os.environ, XDG_CACHE_HOME=str(Path(tmp) / "cache"), PYTHONPATH=str(site))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        load = (
            "from pysendmail.config.cache import load_config; "
            f"load_config({str(cf)!r}, hostname='mail.example.com')"
        )
        subprocess.run([sys.executable, "-c", load], env=env, check=True)  # fills the cache
        bare = start_times([args.python, "-c", "pass"], args.starts, env)
        model = start_times([args.python, "-c", MODEL_ONLY], args.starts, env)
        cached = start_times([args.python, "-c", load], args.starts, env)
        for kind, index in (("wall", 0), ("CPU", 1)):
            runs_by_label = (
                ("python3 -c pass", bare),
                ("import the model", model),
                ("cached load_config", cached),
            )
            for label, runs in runs_by_label:
                times = runs[index]
                print(
                    f"{kind:<4} {label:<20} median {statistics.median(times):7.1f} ms  "
                    f"min {min(times):7.1f} ms"
                )
            added = statistics.median(cached[index]) - statistics.median(bare[index])
            least = min(cached[index]) - min(bare[index])
            print(
                f"{kind:<4} added by the cached load: median {added:+.1f} ms, min {least:+.1f} ms"
            )
            own = statistics.median(cached[index]) - statistics.median(model[index])
            own_least = min(cached[index]) - min(model[index])
            print(
                f"{kind:<4}   beyond importing the model: median {own:+.1f} ms, "
                f"min {own_least:+.1f} ms"
            )


if __name__ == "__main__":
    main()
