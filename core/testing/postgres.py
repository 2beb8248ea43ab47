"""A throwaway PostgreSQL server for tests and benchmarks (the distribution's own binaries).

``with ThrowawayPostgres() as dsn:`` runs ``initdb`` in a temporary directory (as the
``postgres`` user when running as root, since ``initdb`` refuses root), starts the server on a
free port of 127.0.0.1, creates an empty database, yields its DSN, and always stops the server
and removes the directory. Needs psycopg (``stepstream[postgres]``) and the server binaries
(``apt-get install postgresql`` on Debian, where they are not on ``PATH``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["ThrowawayPostgres", "find_server_bindir"]


def find_server_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live, or ``None`` when the server is not installed."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    return next((d for d in candidates if (d / "initdb").is_file()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary directory; :meth:`stop` always cleans up.

    :param bindir: The server binaries' directory (found with :func:`find_server_bindir`).
    :param fsync: Keep fsync on (off by default: faster, fine for throwaway data).
    :param database: The empty database whose DSN :meth:`start` returns.
    :raises FileNotFoundError: when no server binaries are installed.
    """

    def __init__(
        self, bindir: Path | None = None, *, fsync: bool = False, database: str = "stepstream"
    ) -> None:
        found = bindir or find_server_bindir()
        if found is None:
            raise FileNotFoundError(
                "PostgreSQL server binaries (initdb) not found; apt-get install -y postgresql"
            )
        self.bindir = found
        self.fsync = fsync
        self.database = database
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="stepstream-pg-"))
        self.data = self.root / "data"
        self.pg_ctl = [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data)]

    def start(self) -> str:
        """Start the server and return the DSN of an empty database on it.

        :raises RuntimeError: with initdb's output or the server log when a step fails.
        """
        import psycopg

        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        initdb = [*self.as_user, str(self.bindir / "initdb"), "-D", str(self.data), "--no-sync"]
        initdb += ["--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C"]
        done = subprocess.run(initdb, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        port = _free_port()
        options = f"-k {self.root} -p {port} -c listen_addresses=127.0.0.1"
        if not self.fsync:
            options += " -F"
        start = [*self.pg_ctl, "-w", "-l", str(self.root / "server.log"), "-o", options, "start"]
        if subprocess.run(start, capture_output=True, check=False).returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")
            raise RuntimeError(f"pg_ctl start failed:\n{log}")
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.database}")
        return f"postgresql://postgres@127.0.0.1:{port}/{self.database}"

    def stop(self) -> None:
        """Stop the server (a no-op if it never started) and remove its directory."""
        subprocess.run([*self.pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
