"""Model servers' systemd units pass every argument as written. systemd expands `$VAR` and
`${VAR}` in ExecStart (quoted or not) and `%` specifiers: an inventory argument such as a
chat template `{{ '$HOME' }}` or `--api-key=${KEY}` reached the server changed. Checked on
the unit the shipped code renders: the host's llama.cpp exec line and the Python that the
vLLM and demo guest scripts run, read back as systemd reads an ExecStart line."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from phoenix.recipes.llamacpp import app_files
from phoenix.recipes.registry import builtin_scripts_dir
from phoenix.recipes.vllm import service

HOSTILE = ["${HOME}", "$PATH", "a$$b", "100%", "%h", 'say "hi"', "back\\slash", "{{ '$x' }}"]


def systemd_words(line: str) -> list[str]:
    """ExecStart's words as systemd reads them (systemd.service(5), "Command lines"): each
    double-quoted with C escapes; `$$` is `$` and `%%` is `%`; a lone `$` or `%` would be
    expanded, which this refuses to read."""
    words = []
    for word in re.findall(r'"(?:[^"\\]|\\.)*"', line):
        body, out, i = word[1:-1], "", 0
        while i < len(body):
            char = body[i]
            if char == "\\":
                out += body[i + 1]
            elif char in "$%":
                assert body[i + 1 : i + 2] == char, f"systemd would expand {body[i:]!r}"
                out += char
            else:
                out += char
                i -= 1
            i += 2
        words.append(out)
    return words


def _exec_line(unit: str) -> str:
    (line,) = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


def test_llamacpp_exec_line_passes_arguments_as_written() -> None:
    files = app_files({"llamacpp_model": "/m.gguf", "llamacpp_args": HOSTILE})
    words = systemd_words(files["llamacpp-exec"].decode())
    assert words[-len(HOSTILE) :] == HOSTILE


def _guest_python(script: str) -> str:
    text = (builtin_scripts_dir() / script).read_text()
    match = re.search(r"<<'PY'\n(.*?)\nPY\n", text, re.S)
    assert match is not None
    return match.group(1)


def test_the_vllm_unit_passes_arguments_as_written(tmp_path: Path) -> None:
    entry = {"vllm_model": "/models/x", "vllm_served_model_name": "x", "vllm_args": HOSTILE}
    (tmp_path / "vllm-service.json").write_text(json.dumps(service(entry)))
    subprocess.run([sys.executable, "-c", _guest_python("app_vllm.sh")], cwd=tmp_path, check=True)
    words = systemd_words(_exec_line((tmp_path / "unit.new").read_text()))
    start = words.index(HOSTILE[0])
    assert words[start : start + len(HOSTILE)] == HOSTILE, words


@pytest.mark.parametrize("model", ["${HOME}", "50%-off", "$x"])
def test_the_demo_unit_passes_the_model_name_as_written(tmp_path: Path, model: str) -> None:
    (tmp_path / "guest.json").write_text(json.dumps({"vllm_served_model_name": model}))
    python = _guest_python("app_demo_model_server.sh")
    subprocess.run([sys.executable, "-c", python], cwd=tmp_path, check=True)
    line = _exec_line((tmp_path / "unit.new").read_text())
    assert systemd_words(line)[-1] == model and line.endswith("--backend-id %H"), line
    assert shlex.split(line)[0] == "/usr/bin/python3"
