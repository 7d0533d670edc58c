"""The Debian programs of issue 5's table that cannot be installed beside no MTA, run
through their own code with pysendmail as their sendmail: bsd-mailx, anacron, cron,
logwatch, unattended-upgrades.

Their packages depend on an MTA (or, for cron and anacron, would start a service when
installed), so `.ci/run` only fetches them with `apt-get download` into
$PYSENDMAIL_CLIENT_DEBS (default /var/cache/pysendmail-ci/debs); the tests unpack them
with `dpkg -x` into a temporary directory and run them from there. The programs that
hard-code /usr/sbin/sendmail (anacron, cron) run in a private mount namespace
(`unshare -m`) where an overlay puts the tests' wrapper at /usr/sbin/sendmail; the real
/usr/sbin is never changed. The wrapper records the argv the program used and runs
pysendmail with a private copy of the office configuration and queue in front of it
(as in test_cli_real_clients). A program whose package is absent is skipped, saying so.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.integration import cli_support
from tests.integration.test_cli_clients import office, queue, queued, recipients
from tests.integration.test_cli_real_clients import ENTRY, argv_used, client_env

__all__ = ["office", "queue"]  # fixtures shared with test_cli_clients

fixture_users = cli_support.fixture_users
pytestmark = pytest.mark.usefixtures("fixture_users")

DEBS = Path(os.environ.get("PYSENDMAIL_CLIENT_DEBS", "/var/cache/pysendmail-ci/debs"))
BOB = "bob@example.com"


@pytest.fixture(scope="session")
def unpacked(tmp_path_factory: pytest.TempPathFactory):
    """unpacked(package) -> the root of that package's files (dpkg -x), or a skip."""
    root = tmp_path_factory.mktemp("debs")

    def unpack(package: str) -> Path:
        target = root / package
        if target.exists():
            return target
        debs = sorted(DEBS.glob(f"{package}_*.deb"))
        if not debs or shutil.which("dpkg") is None:
            pytest.skip(f"{package}: no .deb in {DEBS} (.ci/run fetches it with apt-get download)")
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(target)], check=True)
        return target

    return unpack


@pytest.fixture
def wrapper(office: Path, queue: Path, tmp_path: Path) -> Path:
    """An executable `sendmail` alone in its own directory (the overlay's upper layer):
    it logs its arguments, then hands them to pysendmail with the office settings."""
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    script = sbin / "sendmail"
    admin = ["-C", str(office / "office.cf"), "-O", f"QueueDirectory={queue}"]
    admin += ["-O", "DeliveryMode=queue"]
    run = shlex.join([sys.executable, "-c", ENTRY, "/usr/sbin/sendmail", *admin])
    env = f"PYTHONPATH={shlex.quote(str(REPO_ROOT))} XDG_CACHE_HOME={tmp_path / 'cache'}"
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > {shlex.quote(str(tmp_path / 'argv.log'))}\n"
        f'{env} exec {run} "$@"\n'
    )
    script.chmod(0o755)
    return script


def need_namespace() -> None:
    """Skip unless this process may make a private mount namespace (root, unshare(1),
    and a container that allows it)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode(errors='replace')}")


def in_namespace(
    wrapper: Path, argv: list[str], layers: dict[str, Path] | None = None, **popen
) -> subprocess.CompletedProcess:
    """Run argv in a private mount namespace whose /usr/sbin/sendmail is `wrapper`; each
    of `layers` ({directory: layer}) is laid over that directory there too."""
    need_namespace()
    overlays = {"/usr/sbin": wrapper.parent, **(layers or {})}
    script = "".join(
        f"mount -t overlay overlay -o lowerdir={shlex.quote(str(layer))}:{target} {target}"
        " || exit 111\n"
        for target, layer in overlays.items()
    )
    script += 'exec "$@"\n'
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv],
        capture_output=True,
        timeout=120,
        **popen,
    )
    if result.returncode == 111:
        pytest.skip(f"cannot mount an overlay here: {result.stderr.decode(errors='replace')}")
    return result


def header(qf: str, name: str) -> str:
    """The value of header `name` in a qf (first line only), '' when absent."""
    for line in qf.splitlines():
        if line.startswith("H?") and "?" in line[2:]:
            field = line[2:].split("?", 1)[1]
            if field.lower().startswith(name.lower() + ":"):
                return field.split(":", 1)[1].strip()
    return ""


def test_bsd_mailx_sends_with_t_and_keeps_bcc_for_sendmail(unpacked, wrapper, queue, tmp_path):
    mailx = unpacked("bsd-mailx") / "usr" / "bin" / "bsd-mailx"
    mailrc = tmp_path / "mailrc"
    mailrc.write_text(f"set sendmail={wrapper}\n")
    env = client_env(tmp_path)
    env["MAILRC"] = str(mailrc)
    result = subprocess.run(
        [str(mailx), "-s", "from bsd-mailx", "-b", "mallory@example.com", BOB],
        input=b"sent by bsd-mailx\n.\nstill the body\n",
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert argv_used(tmp_path) == ["-i", "-t"]
    [(qf, df)] = queued(queue)
    assert sorted(recipients(qf)) == ["bob@example.com", "mallory@example.com"]
    assert header(qf, "Subject") == "from bsd-mailx"
    assert header(qf, "Bcc") == "mallory@example.com"  # kept in the qf; delivery strips it
    assert "b" in next(line for line in qf.splitlines() if line.startswith("F"))
    assert df.endswith(b"sent by bsd-mailx\n.\nstill the body\n")  # -i: the dot is text


def test_anacron_mails_a_jobs_output_with_its_own_argv(unpacked, wrapper, office, tmp_path):
    anacron = unpacked("anacron") / "usr" / "sbin" / "anacron"
    spool = tmp_path / "anacron-spool"
    spool.mkdir()
    tab = tmp_path / "anacrontab"
    tab.write_text(
        "SHELL=/bin/sh\nPATH=/usr/bin:/bin\nMAILTO=bob\n"
        "1\t0\tpysendmail-test\techo output of the job; echo .; echo after the dot\n"
    )
    result = in_namespace(
        wrapper, [str(anacron), "-d", "-f", "-n", "-t", str(tab), "-S", str(spool)]
    )
    assert result.returncode == 0, result.stderr
    # -odi: delivered at once (to the office's mailbox of bob), no -i: a lone dot ends it.
    assert argv_used(tmp_path) == ["-FAnacron", "-odi", "bob"]
    mailbox = (office / "mailboxes" / "bob").read_text()
    assert "From: Anacron <root>" in mailbox or "From: Anacron <root@" in mailbox
    assert "Subject: Anacron job 'pysendmail-test' on " in mailbox
    assert "output of the job\n" in mailbox
    assert "after the dot" not in mailbox  # sendmail stopped reading at the lone dot


def test_unattended_upgrades_summary_mail(unpacked, wrapper, queue, tmp_path):
    python = "/usr/bin/python3"
    probe = subprocess.run(
        [python, "-c", "import apt_pkg, apt, apt_inst, distro_info"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("the system python lacks python3-apt or python3-distro-info")
    script = unpacked("unattended-upgrades") / "usr" / "bin" / "unattended-upgrade"
    # Its own send_summary_mail(), with its sendmail path pointed at the wrapper and the
    # mail settings made in this process's apt configuration only (nothing is written).
    driver = f"""
import importlib.machinery, importlib.util, io, sys
loader = importlib.machinery.SourceFileLoader("uu", {str(script)!r})
spec = importlib.util.spec_from_loader("uu", loader)
uu = importlib.util.module_from_spec(spec)
loader.exec_module(uu)
uu.SENDMAIL_BINARY = {str(wrapper)!r}
uu.apt_pkg.config.set("Unattended-Upgrade::Mail", "bob@example.com")
uu.apt_pkg.config.set("Unattended-Upgrade::MailReport", "always")
uu.apt_pkg.config.set("Unattended-Upgrade::Sender", "root@mail.example.com")
uu.send_summary_mail(["libfoo1", "bar"], True, "All upgrades installed", {{}}, [], [],
                     io.StringIO("Packages that will be upgraded: libfoo1 bar\\n"), "")
"""
    result = subprocess.run(
        [python, "-c", driver], env=client_env(tmp_path), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert argv_used(tmp_path) == ["-oi", "-t"]
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["bob@example.com"]
    assert "\nSroot@mail.example.com\n" not in qf  # -t: the sender is the caller, root
    assert header(qf, "From") == "root@mail.example.com"
    assert header(qf, "Subject").startswith("unattended-upgrades result for ")
    assert header(qf, "Auto-Submitted") == "auto-generated"
    assert header(qf, "Content-Transfer-Encoding") == "quoted-printable"
    assert b"Packages that were upgraded:\n libfoo1 bar\n" in df


def test_logwatch_mails_its_report_through_its_mailer_setting(unpacked, wrapper, queue, tmp_path):
    if shutil.which("perl") is None:
        pytest.skip("logwatch needs perl")
    root = unpacked("logwatch")
    etc = tmp_path / "etc"
    conf = etc / "logwatch" / "conf" / "logwatch.conf"
    conf.parent.mkdir(parents=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    conf.write_text(
        f'LogDir = {logs}\nTmpDir = {tmp_path}\nmailer = "{wrapper} -t"\n'
        "MailFrom = Logwatch\nDetail = High\nRange = today\n"
    )
    script = root / "usr" / "sbin" / "logwatch"
    share = root / "usr" / "share" / "logwatch"
    # logwatch reads /usr/share/logwatch and /etc/logwatch/conf/logwatch.conf: in the
    # namespace, the unpacked scripts and the private configuration are laid over them.
    result = in_namespace(
        wrapper,
        ["perl", str(script), "--service", "zz-disk_space", "--output", "mail", "--mailto", BOB],
        layers={"/usr/share": share.parent, "/etc": etc},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "argv.log").exists(), result.stdout + result.stderr
    assert argv_used(tmp_path) == ["-t"]
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["bob@example.com"]
    assert header(qf, "To") == BOB
    assert header(qf, "From") == "logwatch"  # MailFrom, which logwatch writes in lower case
    assert header(qf, "Subject").startswith("Logwatch for ")
    assert header(qf, "Auto-Submitted") == "auto-generated"
    assert b"Disk Space Begin" in df


def test_cron_mails_a_jobs_output_with_its_own_argv(unpacked, wrapper, queue, tmp_path):
    """Debian's cron, `cron -f` in a private namespace with a private /etc/crontab, runs
    a job at the next minute and mails its output: the one test here that waits (up to
    a minute) for the clock, the only way to run cron's own mailing code."""
    cron = unpacked("cron")
    layers = {"/etc": tmp_path / "etc", "/var/spool": tmp_path / "spool"}
    (layers["/etc"] / "pam.d").mkdir(parents=True)
    shutil.copy(cron / "etc" / "pam.d" / "cron", layers["/etc"] / "pam.d" / "cron")
    (layers["/etc"] / "cron.d").mkdir()  # none of the machine's own jobs
    # cron's spool must belong to group crontab, which exists only in the namespace.
    group_id = 60123
    group = Path("/etc/group").read_text()
    (layers["/etc"] / "group").write_text(f"{group.rstrip()}\ncrontab:x:{group_id}:\n")
    crontab = layers["/etc"] / "crontab"
    crontab.write_text(
        "SHELL=/bin/sh\nPATH=/usr/bin:/bin\nMAILTO=bob\n"
        "* * * * * root echo output of the job; echo .; echo caf\u00e9\n"
    )
    crontab.chmod(0o644)
    spool = layers["/var/spool"] / "cron" / "crontabs"
    spool.mkdir(parents=True)
    os.chown(spool, 0, group_id)
    spool.chmod(0o1730)
    need_namespace()
    overlays = {"/usr/sbin": wrapper.parent, **layers}
    script = "".join(
        f"mount -t overlay overlay -o lowerdir={shlex.quote(str(layer))}:{target} {target}"
        " || exit 111\n"
        for target, layer in overlays.items()
    )
    script += "mount -t tmpfs tmpfs /run || exit 111\n"  # its pid file, in the namespace
    script += f"exec {shlex.quote(str(cron / 'usr' / 'sbin' / 'cron'))} -f\n"
    daemon = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(queue.glob("qf*")) and time.monotonic() < deadline:
            if daemon.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        if daemon.poll() is None:
            daemon.terminate()
        _, errors = daemon.communicate(timeout=30)
    if daemon.returncode == 111:
        pytest.skip(f"cannot mount an overlay here: {errors.decode(errors='replace')}")
    assert argv_used(tmp_path) == ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "bob"]
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["bob"]
    assert "\nB8BITMIME\n" in qf and "8" in next(ln for ln in qf.splitlines() if ln[:1] == "F")
    assert header(qf, "From") == "root (Cron Daemon)"
    assert header(qf, "To") == "bob"
    assert header(qf, "Subject").startswith("Cron <root@")
    assert header(qf, "X-Cron-Env") == "<SHELL=/bin/sh>"
    assert df == "output of the job\n.\ncafé\n".encode()  # -i: the lone dot is text
