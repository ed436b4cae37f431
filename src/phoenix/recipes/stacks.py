"""`docker_stacks`: a VM's compose stacks, in the original tool's layout, as bundles.

A stack is a folder of the config dir, `stacks/<name>/` (the original kept them beside
its `etc/`, as `stacks/<name>/`):

    docker-compose.yml      the compose file (required)
    phoenix.json            {"environments": {"<env>": {"variables": [{"name", "value"}],
                             "services": {"<service>": {"traefik_labels": [...]}}, ...}}}
    configs/<env>.env       KEY=VALUE lines for that environment
    ...                     anything else the compose file refers to (shipped along)

The VM's entry picks one environment (`{"name": ..., "environment": ...}`); it must be
named by `phoenix.json` or have its `configs/<env>.env`. Its variables (the `.env` file,
then the manifest's, which win) become the compose project's env file, so `${API_PORT}`
in the compose file is filled in; the manifest's Traefik labels become an override file
(JSON, which compose reads as YAML) merged onto the compose file.

The bundle runs `stack_deploy.sh` inside the VM: the folder is swapped into
`/opt/phoenix/stacks/<name>/` and `docker compose -p <name> up -d --remove-orphans` runs
there (Debian 12's `docker-compose` where the compose plugin is absent). The bundle's
digest covers every file and variable, so an unchanged stack is no step and any change
re-deploys it. A stack whose files are missing is a step that cannot run, naming the path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phoenix.inventory.models import DockerStack
from phoenix.recipes.bundle import Bundle
from phoenix.recipes.registry import builtin_scripts_dir

STACKS_DIR = "stacks"
COMPOSE_FILE = "docker-compose.yml"
MANIFEST = "phoenix.json"
ENV_DIR = "configs"
SCRIPT = "stack_deploy.sh"
# Names under the run dir: the stack's folder, and what Phoenix writes beside it.
STACK_FILES = "stack"
ENV_FILE = "phoenix.env"
OVERRIDE_FILE = "phoenix-override.yml"
MAX_STACK_BYTES = 32 * 1024 * 1024  # a stack is configuration; images come from registries
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def bundle_name(stack: str) -> str:
    return f"stack-{stack}"


def project_name(stack: str) -> str:
    """Compose project names are lower case (`docker compose -p` refuses capitals)."""
    return stack.lower()


@dataclass(frozen=True)
class StackSource:
    """What a stack's folder says for one environment."""

    files: dict[str, bytes]
    variables: dict[str, str]
    labels: dict[str, list[str]]


def stack_dir(config_dir: Path, name: str) -> Path:
    return config_dir / STACKS_DIR / name


def stack_bundle(config_dir: Path, stack: DockerStack) -> tuple[Bundle | None, str | None]:
    """(bundle, None), or (None, why) naming the path that is missing or wrong."""
    try:
        source = read_stack(stack_dir(config_dir, stack.name), stack.environment)
    except StackError as exc:
        return None, str(exc)
    files = {f"{STACK_FILES}/{path}": data for path, data in source.files.items()}
    files[ENV_FILE] = render_env(source.variables)
    if source.labels:
        files[OVERRIDE_FILE] = render_override(source.labels)
    script = (builtin_scripts_dir() / SCRIPT).read_bytes()
    entry: dict[str, Any] = {"docker_stack": {"name": stack.name, "environment": stack.environment}}
    env = {"PHOENIX_STACK": stack.name, "PHOENIX_STACK_PROJECT": project_name(stack.name)}
    return Bundle(bundle_name(stack.name), SCRIPT, script, files, entry, env, timeout=3600.0), None


class StackError(ValueError):
    """A stack's folder cannot be deployed (the message names the path)."""


def read_stack(folder: Path, environment: str) -> StackSource:
    compose = folder / COMPOSE_FILE
    if not compose.is_file():
        raise StackError(f"no compose file: {compose} not found")
    manifest = _manifest(folder / MANIFEST)
    environments = manifest.get("environments", {})
    if not isinstance(environments, dict):
        raise StackError(f"{folder / MANIFEST}: 'environments' is not an object")
    env_file = folder / ENV_DIR / f"{environment}.env"
    if environment not in environments and not env_file.is_file():
        have = ", ".join(sorted(environments)) or "none"
        raise StackError(
            f"environment {environment!r} is neither in {folder / MANIFEST} (environments: "
            f"{have}) nor a file {env_file}"
        )
    spec = environments.get(environment) or {}
    if not isinstance(spec, dict):
        raise StackError(f"{folder / MANIFEST}: environments.{environment} is not an object")
    variables = parse_env_file(env_file) if env_file.is_file() else {}
    variables.update(_manifest_variables(folder / MANIFEST, environment, spec))
    return StackSource(_folder_files(folder), variables, _labels(folder / MANIFEST, spec))


def _manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StackError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise StackError(f"{path}: not a JSON object")
    return data


def _manifest_variables(path: Path, environment: str, spec: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    at = f"{path}: environments.{environment}.variables"
    variables = spec.get("variables") or []
    if not isinstance(variables, list):
        raise StackError(f"{at} is not a list")
    for index, item in enumerate(variables):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise StackError(f"{at}[{index}] is not {{'name': ..., 'value': ...}}")
        value = item.get("value", "")
        if not isinstance(value, (str, int, float, bool)):
            raise StackError(f"{at}[{index}].value is not a string or number")
        out[_variable(item["name"], f"{at}[{index}].name")] = _value(str(value), at)
    return out


def _labels(path: Path, spec: dict[str, Any]) -> dict[str, list[str]]:
    services = spec.get("services") or {}
    if not isinstance(services, dict):
        raise StackError(f"{path}: 'services' is not an object")
    out: dict[str, list[str]] = {}
    for service, conf in sorted(services.items()):
        labels = conf.get("traefik_labels", []) if isinstance(conf, dict) else None
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise StackError(f"{path}: services.{service}.traefik_labels is not a list of strings")
        if labels:
            out[service] = labels
    return out


def parse_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines (blank lines and `#` comments skipped), as compose reads them."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StackError(f"{path}: not readable ({exc})") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise StackError(f"{path}:{number}: not KEY=VALUE")
        out[_variable(key.strip(), f"{path}:{number}")] = value
    return out


def _variable(name: str, at: str) -> str:
    if not _VARIABLE.fullmatch(name):
        raise StackError(f"{at}: {name!r} is not a variable name (letters, digits, '_')")
    return name


def _value(value: str, at: str) -> str:
    if "\n" in value or "\r" in value or "\0" in value:
        raise StackError(f"{at}: a value holds a line break")
    return value


def render_env(variables: dict[str, str]) -> bytes:
    """The project's env file, sorted (a stable digest)."""
    return "".join(f"{k}={v}\n" for k, v in sorted(variables.items())).encode()


def render_override(labels: dict[str, list[str]]) -> bytes:
    """A compose override adding the manifest's labels (JSON is YAML to compose)."""
    services = {name: {"labels": values} for name, values in sorted(labels.items())}
    return (json.dumps({"services": services}, indent=2, sort_keys=True) + "\n").encode()


def _folder_files(folder: Path) -> dict[str, bytes]:
    """Every regular file under the stack's folder (a link must stay inside it), by its
    relative path; `.git` is left out."""
    root = folder.resolve()
    out: dict[str, bytes] = {}
    total = 0
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if ".git" in rel.parts or path.is_dir():
            continue
        if not path.resolve().is_relative_to(root):
            raise StackError(f"{path}: a link out of the stack's folder")
        if not path.is_file():
            continue
        data = path.read_bytes()
        total += len(data)
        if total > MAX_STACK_BYTES:
            raise StackError(
                f"{folder}: more than {MAX_STACK_BYTES // 2**20} MiB of files; a stack is "
                "configuration (images come from a registry)"
            )
        out[rel.as_posix()] = data
    return out
