"""`dvc push` / `dvc pull` after checking that the remote can be reached.

    python -m latent_abstractions.pipeline.remote push|pull [REMOTE]     (or: make push, make pull)

DVC itself reports a missing local remote as missing cache files, and a network
remote's failure deep in a traceback; this checks the remote first and names it in
one line. The default remote is a folder beside the repository (see .dvc/config).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


class RemoteError(RuntimeError):
    """The DVC remote is not configured or cannot be reached."""


def check_remote(name: str | None = None) -> str:
    """The remote's name and URL, after checking that it can be reached."""
    from dvc.repo import Repo

    try:
        repo = Repo()
        remote = repo.cloud.get_remote(name)
    except Exception as exc:  # DVC raises several kinds for a bad or missing remote
        raise RemoteError(f"DVC remote {name or '(default)'}: {str(exc).splitlines()[0]}") from None
    described = f"DVC remote {remote.name!r} ({remote.path})"
    try:
        reachable = remote.fs.exists(remote.path)
    except Exception as exc:
        raise RemoteError(f"{described} is not reachable: {str(exc).splitlines()[0]}") from None
    if not reachable:
        raise RemoteError(f"{described} is not reachable: it does not exist")
    return described


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m latent_abstractions.pipeline.remote", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=["push", "pull"])
    parser.add_argument("remote", nargs="?", help="remote name (default: the configured default)")
    args = parser.parse_args(argv)
    try:
        if args.action == "push":
            _create_local_folder(args.remote)
        described = check_remote(args.remote)
    except RemoteError as exc:
        sys.exit(f"error: {exc}")
    print(f"{args.action}: {described}", file=sys.stderr)
    command = [sys.executable, "-m", "dvc", args.action] + (["--remote", args.remote] if args.remote else [])
    sys.exit(subprocess.call(command))


def _create_local_folder(name: str | None) -> None:
    """A first push makes the default local folder; other kinds of remote must exist already."""
    from dvc.repo import Repo

    try:
        remote = Repo().cloud.get_remote(name)
    except Exception:
        return  # reported by check_remote
    if remote.fs.protocol == "local":
        os.makedirs(remote.path, exist_ok=True)


if __name__ == "__main__":
    main()
