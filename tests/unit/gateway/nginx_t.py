"""Render an inventory's gateway with the real CLI and check the tree with the real
`nginx -t` (installed for the tests): what validate accepts must pass both."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from typer.testing import CliRunner

from phoenix.cli.app import app

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def render_and_check(config_dir: Path, ctid: int | None = None) -> str | None:
    """None when `gateway render` and `nginx -t` both pass, else what failed."""
    work = Path(tempfile.mkdtemp(prefix="phoenix-nginx-t-"))
    try:
        args = ["-c", str(config_dir), "gateway", "render", "--out", str(work / "out")]
        args += ["--mode", "derived", "--state-dir", str(work / "state")]
        if ctid is not None:
            args += ["--ctid", str(ctid)]
        result = CliRunner().invoke(app, args)
        if result.exit_code != 0 or result.exception is not None:
            if isinstance(result.exception, SystemExit) or result.exception is None:
                return f"gateway render failed: {result.output}"
            return f"gateway render raised {result.exception!r}: {result.output}"
        return nginx_t(work / "out" / "tree")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def nginx_t(tree: Path) -> str | None:
    """None when `nginx -t` accepts a rendered tree, else its complaint."""
    work = Path(tempfile.mkdtemp(prefix="phoenix-nginx-t-"))
    try:
        (work / "logs").mkdir()
        conf = str(tree / "nginx.conf")
        where = f"pid {work}/nginx.pid; error_log {work}/logs/error.log;"
        check = subprocess.run(
            [NGINX, "-t", "-q", "-p", f"{work}/", "-c", conf, "-g", where],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check.returncode != 0:
            return f"nginx -t failed: {check.stderr.strip()}"
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)
