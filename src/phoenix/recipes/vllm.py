"""vLLM as a built-in recipe: the pip requirement the `vllm` feature installs into
`/opt/vllm`, and the OpenAI server's arguments the application's systemd unit runs.

Arguments come from `vllm_engine_config`: every key of every section (`ModelConfig`,
`CacheConfig`, `ParallelConfig`, `ServerConfig`, in the inventory's order; keys outside the
sections too) as `--key-with-dashes VALUE`; `true` is a bare flag, `false`/`null` are left
out, a list gives its items after the flag, an object is passed as JSON. The older flat
keys (`vllm_model`, `vllm_port`...) give the same form; `vllm_args`, when written, is used
as it is. Computed here (unit tested) and shipped to the guest as data, never as shell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# The vLLM release the feature installs unless the guest says `vllm_version` (or names a
# package or wheel URL with `vllm_package`).
DEFAULT_VLLM_VERSION = "0.10.2"
VLLM_APP_SCRIPT = "phoenix_hypervisor_lxc_vllm.sh"
SERVICE_FILE = "vllm-service.json"


def pip_spec(entry: Mapping[str, Any]) -> str:
    """What `pip install` gets: `vllm_package` as written, else `vllm==<version>`."""
    package = entry.get("vllm_package")
    if isinstance(package, str) and package:
        return package
    version = entry.get("vllm_version")
    return f"vllm=={version if isinstance(version, str) and version else DEFAULT_VLLM_VERSION}"


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _args(pairs: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in pairs.items():
        if value is None or value is False:
            continue
        if value is True:
            out.append(_flag(key))
        elif isinstance(value, list):
            out += [_flag(key), *(str(v) for v in value)]
        elif isinstance(value, dict):
            out += [_flag(key), json.dumps(value, sort_keys=True)]
        else:
            out += [_flag(key), str(value)]
    return out


def engine_argv(entry: Mapping[str, Any]) -> list[str]:
    """The api_server arguments of one guest entry (as written in the inventory)."""
    config = entry.get("vllm_engine_config")
    if isinstance(config, Mapping) and config:
        argv: list[str] = []
        flat: dict[str, Any] = {}
        for key, value in config.items():
            if isinstance(value, Mapping):
                argv += _args(value)
            else:
                flat[key] = value
        return argv + _args(flat)
    written = entry.get("vllm_args")
    if isinstance(written, list) and written:
        args = [str(a) for a in written]
        if entry.get("vllm_model") and "--model" not in args:
            args = ["--model", str(entry["vllm_model"]), *args]
        if "--port" not in args:
            args += ["--port", str(entry.get("vllm_port") or 8000)]
        return args
    legacy = {
        "model": entry.get("vllm_model"),
        "served_model_name": entry.get("vllm_served_model_name"),
        "host": "0.0.0.0",
        "port": entry.get("vllm_port") or 8000,
        "tensor_parallel_size": entry.get("vllm_tensor_parallel_size"),
        "gpu_memory_utilization": entry.get("vllm_gpu_memory_utilization"),
        "max_model_len": entry.get("vllm_max_model_len"),
        "quantization": entry.get("vllm_quantization"),
        "trust_remote_code": entry.get("vllm_trust_remote_code"),
    }
    params = entry.get("vllm_parameters")
    if isinstance(params, Mapping):
        legacy.update({k: v for k, v in params.items() if k not in legacy or not legacy[k]})
    return _args(legacy)


def service(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What the application's guest script needs: argv, port and the served name."""
    argv = engine_argv(entry)

    def value(flag: str) -> str | None:
        return argv[argv.index(flag) + 1] if flag in argv[:-1] else None

    port = int(value("--port") or 8000)
    name = value("--served-model-name") or value("--model") or ""
    return {"argv": argv, "port": port, "served_model_name": name}
