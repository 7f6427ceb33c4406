"""A single-node SLURM cluster on this machine, for trying the SLURM profile without a cluster.

    python3 workflow/scripts/local_slurm.py install [--accounting]
    python3 workflow/scripts/local_slurm.py start DIR [--gpus N] [--accounting] [--account NAME]
    python3 workflow/scripts/local_slurm.py stop DIR

``install`` installs Debian's packages with apt-get (slurm-wlm and munge; with
``--accounting`` also slurmdbd and mariadb-server); it needs root, does nothing when
the programs are there already, and exits with status 3 when they cannot be installed. ``start`` (as root) starts a private cluster: every file
(munge key and socket, slurm.conf, state, logs, pid files, the accounting database)
lives under DIR and every daemon listens on a free port, so it touches no system
configuration and several clusters can run side by side. It prints the line that points
the SLURM commands at it::

    eval "$(python3 workflow/scripts/local_slurm.py start /tmp/slurm --gpus 1)"
    snakemake --workflow-profile workflow/profiles/slurm
    python3 workflow/scripts/local_slurm.py stop /tmp/slurm

The line sets SLURM_CONF and puts DIR/bin first on PATH: wrappers of sbatch, srun,
squeue, ... that name the config themselves, because the plugin's job step drops
SLURM_CONF before it calls srun inside a job (see `write_clients`).

The cluster: one node named after this machine, with the CPUs and memory ``slurmd -C``
reports; partition ``debug`` (the default); with ``--gpus N`` also a partition ``gpu``
on the same node offering N GPUs as generic resources (the /dev/nvidia* devices where
they exist, else one stand-in GPU on /dev/null: jobs asking for ``--gres=gpu:1`` are
scheduled and find no device, which tests the requests, not CUDA). Without
``--accounting`` there is no accounting database, as on many small clusters: sacct
fails and job states come from squeue (finished jobs stay listed for MinJobAge, 30
minutes here). With it, MariaDB and slurmdbd record every job, the account
(``--account``, default ``research``) is made for the user (the one behind sudo), and
accounts are enforced (a job naming another is refused), as on most production clusters.

``stop`` cancels the cluster's jobs, then stops the daemons it started (by the pid files
under DIR, each checked to be the program it should be) and leaves DIR for inspection.
Standard library only: run it with the system's python3.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["slurm-wlm", "munge"]
ACCOUNTING_PACKAGES = ["slurmdbd", "mariadb-server", "mariadb-client"]
PROGRAMS = ["slurmctld", "slurmd", "sbatch", "squeue", "munged", "mungekey"]
ACCOUNTING_PROGRAMS = ["slurmdbd", "sacctmgr", "mariadbd", "mariadb-install-db", "mariadb"]
APT_LOCK = "/tmp/apt-get.lock"  # held by every apt-get of the project's set-up scripts and tests
CLUSTER = "local"
CLIENTS = [
    "sbatch",
    "srun",
    "salloc",
    "squeue",
    "scancel",
    "scontrol",
    "sinfo",
    "sacct",
    "sacctmgr",
    "sshare",
    "sstat",
    "sprio",
    "sdiag",
]
DB_USER, DB_PASSWORD, DB_NAME = "slurm", "local-slurm", "slurm_acct_db"
HEADER = "# A single-node cluster written by workflow/scripts/local_slurm.py"
OWN_FILES = ["run", "log", "state", "spool", "munge", "mysql", "bin", "slurm.conf", "slurmdbd.conf", "gres.conf"]
# Daemons in the order they are stopped; each pid file names the program it must be.
DAEMONS = [
    ("slurmd", "slurmd"),
    ("slurmctld", "slurmctld"),
    ("slurmdbd", "slurmdbd"),
    ("mariadb", "mariadbd"),
    ("munged", "munged"),
]


def say(message: str) -> None:
    print(f"local_slurm: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def missing(programs: list[str]) -> list[str]:
    return [p for p in programs if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]


def install(accounting: bool) -> None:
    needed = missing(PROGRAMS + (ACCOUNTING_PROGRAMS if accounting else []))
    if not needed:
        say("SLURM and munge are installed" + (" with accounting" if accounting else ""))
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        fail(
            f"cannot install {', '.join(needed)}: needs root and apt-get (Debian packages "
            f"{' '.join(PACKAGES + (ACCOUNTING_PACKAGES if accounting else []))})",
            code=3,
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    packages = PACKAGES + (ACCOUNTING_PACKAGES if accounting else [])
    say(f"apt-get install {' '.join(packages)}")
    # Another apt-get may be running (a parallel test worker installing Chromium):
    # `update` does not wait for the package lists' lock, so the installs take turns.
    apt_get = ["flock", APT_LOCK, "apt-get", "-o", "DPkg::Lock::Timeout=300"]
    for command in (
        [*apt_get, "update", "-qq"],
        [*apt_get, "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            fail(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}", code=3)
    still = missing(PROGRAMS + (ACCOUNTING_PROGRAMS if accounting else []))
    if still:
        fail(f"still missing after apt-get: {', '.join(still)}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_line() -> str:
    """This machine as `slurmd -C` describes it (CPUs, sockets, cores, RealMemory)."""
    described = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    return described.splitlines()[0]


def pid_of(directory: Path, name: str, program: str) -> int | None:
    """The pid in DIR/run/NAME.pid when that process is alive and runs PROGRAM."""
    try:
        pid = int((directory / "run" / f"{name}.pid").read_text().split()[0])
        executable = os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    except (OSError, ValueError, IndexError):
        return None
    # Debian installs some daemons as PROGRAM-wlm (slurmd-wlm) behind alternatives links.
    return pid if executable == program or executable.startswith(f"{program}-") else None


def run(command: list[str], env: dict, what: str, timeout: int = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        fail(f"{what} failed ({' '.join(command)}):\n{result.stdout}{result.stderr}")
    return result


def wait_for(check, what: str, log: Path | None, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log and log.exists() else ""
    fail(f"{what} did not come up within {seconds:.0f} s" + (f"; {log}:\n{tail}" if tail else ""))


def start_munge(directory: Path) -> None:
    # munged insists that everyone can traverse to its socket and that only root can write there.
    (directory / "munge").mkdir(mode=0o755, exist_ok=True)
    os.chmod(directory / "munge", 0o755)
    key = directory / "munge" / "munge.key"
    if not key.exists():
        subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True)
    os.chmod(key, 0o600)
    socket_path = directory / "munge" / "munge.socket"
    if pid_of(directory, "munged", "munged"):
        return
    subprocess.run(
        [
            "munged",
            "--socket",
            str(socket_path),
            "--key-file",
            str(key),
            "--pid-file",
            str(directory / "run" / "munged.pid"),
            "--log-file",
            str(directory / "log" / "munged.log"),
            "--seed-file",
            str(directory / "munge" / "munged.seed"),
        ],
        check=True,
    )
    wait_for(socket_path.exists, "munged", directory / "log" / "munged.log", 20)


def start_mariadb(directory: Path, port: int) -> None:
    data = directory / "mysql"
    if not data.exists():
        data.mkdir()
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
    socket_path = data / "mysqld.sock"
    log = directory / "log" / "mariadb.log"
    with open(log, "ab") as output:
        subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={socket_path}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--pid-file={directory / 'run' / 'mariadb.pid'}",
                f"--log-error={log}",
                "--user=root",
            ],
            stdout=output,
            stderr=output,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    client = ["mariadb", "--no-defaults", f"--socket={socket_path}", "-u", "root"]
    wait_for(
        lambda: subprocess.run([*client, "-e", "select 1"], capture_output=True).returncode == 0, "mariadbd", log, 60
    )
    sql = (
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; "
        f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1'; FLUSH PRIVILEGES;"
    )
    run([*client, "-e", sql], os.environ.copy(), "creating the accounting database user")


def write_config(directory: Path, gpus: int, accounting: bool) -> dict:
    host = socket.gethostname().split(".")[0]
    ports = {"slurmctld": free_port(), "slurmd": free_port(), "slurmdbd": free_port(), "mariadb": free_port()}
    munge_socket = directory / "munge" / "munge.socket"
    node = node_line().replace(f"NodeName={host}", "").strip()
    lines = [
        f"{HEADER}; everything under {directory}.",
        f"ClusterName={CLUSTER}",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ports['slurmctld']}",
        f"SlurmdPort={ports['slurmd']}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        "MpiDefault=none",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",  # memory is requested and enforced at scheduling
        "ReturnToService=2",
        "MinJobAge=1800",  # finished jobs stay visible to squeue (and scontrol) for 30 minutes
        "SchedulerParameters=sched_interval=5",
        f"SlurmctldPidFile={directory / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={directory / 'run' / 'slurmd.pid'}",
        f"StateSaveLocation={directory / 'state'}",
        f"SlurmdSpoolDir={directory / 'spool'}",
        f"SlurmctldLogFile={directory / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={directory / 'log' / 'slurmd.log'}",
    ]
    if accounting:
        lines += [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={ports['slurmdbd']}",
            "AccountingStorageEnforce=associations",
            f"AccountingStoragePass={munge_socket}",  # the munged that signs messages to slurmdbd
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=5",
        ]
    else:
        lines += ["AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none"]
    gres = ""
    if gpus:
        lines.append("GresTypes=gpu")
        if accounting:
            lines.append("AccountingStorageTRES=gres/gpu")  # sacct's AllocTRES shows the GPUs
        gres = f" Gres=gpu:{gpus}"
        # Slurm wants a device file per GPU: the real ones where present, else /dev/null (one).
        devices = [f"/dev/nvidia{i}" for i in range(gpus)]
        if not all(Path(d).exists() for d in devices):
            if gpus != 1:
                fail(f"--gpus {gpus}: this machine has no /dev/nvidia0..{gpus - 1}; a stand-in GPU is one only")
            devices = ["/dev/null"]
        (directory / "gres.conf").write_text(f"NodeName={host} Name=gpu Count={gpus} File={','.join(devices)}\n")
    lines += [
        f"NodeName={host} NodeAddr=127.0.0.1 {node}{gres} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
    ]
    if gpus:
        lines.append(f"PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP")
    (directory / "slurm.conf").write_text("\n".join(lines) + "\n")
    if accounting:
        dbd = directory / "slurmdbd.conf"
        dbd.write_text(
            "\n".join(
                [
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={munge_socket}",
                    "DbdHost=localhost",
                    "DbdAddr=127.0.0.1",
                    f"DbdPort={ports['slurmdbd']}",
                    "SlurmUser=root",
                    "StorageType=accounting_storage/mysql",
                    "StorageHost=127.0.0.1",
                    f"StoragePort={ports['mariadb']}",
                    f"StorageUser={DB_USER}",
                    f"StoragePass={DB_PASSWORD}",
                    f"StorageLoc={DB_NAME}",
                    f"PidFile={directory / 'run' / 'slurmdbd.pid'}",
                    f"LogFile={directory / 'log' / 'slurmdbd.log'}",
                ]
            )
            + "\n"
        )
        os.chmod(dbd, 0o600)  # slurmdbd refuses a config others can read
    return ports


def write_clients(directory: Path) -> None:
    """DIR/bin/sbatch, srun, ...: the SLURM commands bound to this cluster's slurm.conf.

    SLURM_CONF alone is not enough: snakemake-executor-plugin-slurm-jobstep (0.6.1)
    removes every SLURM_* variable but the job's identity before it calls srun inside a
    job, so an srun found through PATH must know the config by itself."""
    (directory / "bin").mkdir(exist_ok=True)
    for name in CLIENTS:
        real = shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin")
        if real is None:
            continue
        wrapper = directory / "bin" / name
        wrapper.write_text(
            f"#!/bin/sh\n# {name} of the cluster under {directory} (local_slurm.py)\n"
            f'SLURM_CONF={directory / "slurm.conf"} exec {real} "$@"\n'
        )
        os.chmod(wrapper, 0o755)


def exports(directory: Path) -> str:
    return f"export SLURM_CONF={directory / 'slurm.conf'} PATH={directory / 'bin'}:$PATH"


def submitter() -> str:
    """The user who will submit jobs: the one behind sudo, else this one."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "root"


def node_ready(env: dict) -> bool:
    result = subprocess.run(["sinfo", "--noheader", "--format=%T"], env=env, capture_output=True, text=True)
    states = result.stdout.split()
    return (
        result.returncode == 0 and bool(states) and all(s.rstrip("*") in ("idle", "mixed", "allocated") for s in states)
    )


def start(directory: Path, gpus: int, accounting: bool, account: str) -> None:
    if os.geteuid() != 0:
        fail("starting slurmd needs root")
    absent = missing(PROGRAMS + (ACCOUNTING_PROGRAMS if accounting else []))
    if absent:
        fail(
            f"not installed: {', '.join(absent)}; run `local_slurm.py install"
            f"{' --accounting' if accounting else ''}` first"
        )
    directory = directory.resolve()
    env = {**os.environ, "SLURM_CONF": str(directory / "slurm.conf")}
    if pid_of(directory, "slurmctld", "slurmctld") and pid_of(directory, "slurmd", "slurmd"):
        say(f"already running under {directory}")
        print(exports(directory))
        return
    if any(pid_of(directory, name, program) for name, program in DAEMONS):
        fail(f"the cluster under {directory} is partly running; stop it first")
    if (directory / "slurm.conf").exists():
        if not (directory / "slurm.conf").read_text().startswith(HEADER):
            fail(f"{directory / 'slurm.conf'} was not written by this script; use another directory")
        say(f"starting afresh: removing the stopped cluster's files under {directory}")
        for name in OWN_FILES:
            path = directory / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)  # munged checks that its socket's directories can be traversed
    for sub in ("run", "log", "state", "spool"):
        (directory / sub).mkdir(exist_ok=True)
    ports = write_config(directory, gpus, accounting)
    write_clients(directory)
    start_munge(directory)
    if accounting:
        start_mariadb(directory, ports["mariadb"])
        run(["slurmdbd"], env, "slurmdbd")
        wait_for(
            lambda: subprocess.run(["sacctmgr", "-n", "list", "cluster"], env=env, capture_output=True).returncode == 0,
            "slurmdbd",
            directory / "log" / "slurmdbd.log",
            60,
        )
        for command in (
            ["add", "cluster", CLUSTER],
            ["add", "account", account, f"Cluster={CLUSTER}"],
            ["add", "user", submitter(), f"Account={account}", f"Cluster={CLUSTER}"],
        ):
            run(["sacctmgr", "-i", *command], env, f"sacctmgr {' '.join(command)}")
    run(["slurmctld", "-f", str(directory / "slurm.conf")], env, "slurmctld")
    run(["slurmd", "-f", str(directory / "slurm.conf")], env, "slurmd")
    wait_for(lambda: node_ready(env), "the node", directory / "log" / "slurmd.log", 60)
    say(
        f"running: {', '.join(f'{k} port {v}' for k, v in ports.items() if accounting or k in ('slurmctld', 'slurmd'))}"
        f"; partitions debug{' and gpu' if gpus else ''}; {'with' if accounting else 'no'} accounting"
    )
    print(exports(directory))


def stop(directory: Path) -> None:
    directory = directory.resolve()
    env = {**os.environ, "SLURM_CONF": str(directory / "slurm.conf")}
    if pid_of(directory, "slurmctld", "slurmctld"):
        jobs = subprocess.run(
            ["squeue", "--noheader", "--format=%i", "--states=PENDING,RUNNING,SUSPENDED,COMPLETING"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
        if jobs:
            say(f"cancelling jobs {' '.join(jobs)}")
            subprocess.run(["scancel", *jobs], env=env, capture_output=True, timeout=30)
            deadline = time.monotonic() + 30
            while (
                time.monotonic() < deadline
                and subprocess.run(
                    ["squeue", "--noheader", "--format=%i"], env=env, capture_output=True, text=True, timeout=30
                ).stdout.split()
            ):
                time.sleep(1)
    for name, program in DAEMONS:
        pid = pid_of(directory, name, program)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and pid_of(directory, name, program) == pid:
            time.sleep(0.2)
        if pid_of(directory, name, program) == pid:
            say(f"{name} ({pid}) ignored SIGTERM; killing it")
            os.kill(pid, signal.SIGKILL)
        say(f"stopped {name} ({pid})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    installing = commands.add_parser("install", help="apt-get install slurm-wlm munge (root)")
    installing.add_argument("--accounting", action="store_true", help="also slurmdbd and mariadb-server")
    starting = commands.add_parser("start", help="start a cluster under DIR; prints `export SLURM_CONF=...`")
    starting.add_argument("directory", type=Path)
    starting.add_argument("--gpus", type=int, default=0, help="GPUs the node offers as gres (a count only)")
    starting.add_argument("--accounting", action="store_true", help="a MariaDB + slurmdbd accounting database")
    starting.add_argument("--account", default="research", help="the account made for the user (with --accounting)")
    stopping = commands.add_parser("stop", help="cancel the jobs and stop the daemons of the cluster under DIR")
    stopping.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "install":
        install(args.accounting)
    elif args.command == "start":
        start(args.directory, args.gpus, args.accounting, args.account)
    else:
        stop(args.directory)


if __name__ == "__main__":
    main(sys.argv[1:])
