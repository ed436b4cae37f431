"""The rule of the inventory: whatever `validate` accepts, `plan --offline` (both drivers)
and `gateway render` handle without an "unexpected" error, the derived gateway passes the
real `nginx -t`, every Proxmox command of its offline plan is valid for the Proxmox VE API
schema, and nothing a user writes makes a traceback.

Inventories come from three sources: the JSON Schema Phoenix exports (hypothesis-jsonschema),
a generator of plausible labs (clones, templates, gateways, routes, firewalls, DHCP...), and
random mutations of the two real inventories in tests/fixtures. The budget and the seed are
fixed and printed, so a CI failure replays exactly; raise the budget locally with
PHOENIX_PROPERTY_EXAMPLES (and change PHOENIX_PROPERTY_SEED) to search further.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.cli.gateway_app import GATEWAY
from phoenix.drivers.factory import OfflineDriver
from phoenix.drivers.proxmox.preview import Preview
from phoenix.errors import PhoenixError
from phoenix.inventory import load_inventory
from phoenix.inventory.schema import inventory_schema
from phoenix.names import DRIVERS
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.preview import PlanPreview
from tests.conftest import shared_fixture
from tests.unit.gateway.nginx_t import nginx_t
from tests.unit.proxmox.apischema import check_argv
from tests.unit.proxmox.test_schema import ASSIGNED_MAC, PLACEHOLDER

BUDGET = int(os.environ.get("PHOENIX_PROPERTY_EXAMPLES", "100"))
SEED = int(os.environ.get("PHOENIX_PROPERTY_SEED", "20261127"))
LXC = "phoenix_lxc_configs.json"
HYP = "phoenix_hypervisor_config.json"
FIXTURES = ("phoenix-etc-2025-10-03", "phoenix-etc-seed")

# What a run on a user's mistake may print; what it must never print.
FORBIDDEN = ("Traceback", "unexpected")


def _settings(share: float) -> settings:
    return settings(
        max_examples=max(5, int(BUDGET * share)),
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


@pytest.fixture(scope="module", autouse=True)
def _announce(request: pytest.FixtureRequest) -> Iterator[None]:
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else _null():
        print(
            f"\nproperty test: budget {BUDGET} examples "
            f"(PHOENIX_PROPERTY_EXAMPLES), seed {SEED} (PHOENIX_PROPERTY_SEED)"
        )
    yield


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


class Lab:
    """A scratch config dir and state dir, rewritten for every example."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="phoenix-property-"))
        self.state = self.root / "state"

    def write(self, lxc: Any, hypervisor: Any, nginx_from: Path | None = None) -> Path:
        etc = self.root / "etc"
        if etc.exists():
            shutil.rmtree(etc)
        etc.mkdir()
        if nginx_from is not None and (nginx_from / "nginx").is_dir():
            shutil.copytree(nginx_from / "nginx", etc / "nginx")
        if isinstance(hypervisor, dict):
            hypervisor = dict(hypervisor)
            phoenix = hypervisor.get("phoenix")
            if not isinstance(phoenix, dict):
                phoenix = {}
            # Never the real host's paths, whatever the example says.
            hypervisor["phoenix"] = {**phoenix, "state_dir": str(self.state)}
        (etc / HYP).write_text(json.dumps(hypervisor))
        (etc / LXC).write_text(json.dumps(lxc))
        return etc

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    made = Lab()
    yield made
    made.close()


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    output = result.output
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"{' '.join(args)} raised {exc!r}\n{output}"
    for word in FORBIDDEN:
        assert word not in output, f"{' '.join(args)} printed {word!r}:\n{output}"
    return result.exit_code, output


def check_rule(etc: Path, out: Path, modes: tuple[str, ...] = ("auto",)) -> bool:
    """validate never raises; a valid inventory plans on both drivers and renders."""
    code, output = _run(["-c", str(etc), "validate"])
    assert code in (0, 1), output
    if code != 0:
        return False
    for driver in DRIVERS:
        # A driver has rules of its own (Proxmox: no snapshot of a guest with a bind
        # mount): what validate refuses for it, plan refuses too.
        code, output = _run(["-c", str(etc), "--driver", driver, "validate"])
        assert code in (0, 1), output
        args = ["-c", str(etc), "--driver", driver, "plan", "--offline"]
        if driver == "proxmox":
            args.append("--commands")
        refused = code == 1
        code, output = _run(args)
        if refused:
            assert code == 1, output
            continue
        # A clean refusal is allowed (a debootstrap template on Proxmox): one message.
        assert code == 0 or output.startswith("error: "), output
    for mode in modes:
        if out.exists():
            shutil.rmtree(out)
        code, output = _run(
            ["-c", str(etc), "gateway", "render", "--mode", mode, "--out", str(out)]
        )
        if mode == "auto" and (etc / "nginx" / "sites-available").is_dir():
            # The operator's hand-written sites, as they are: they may be broken (the
            # fixtures' are), which render reports as one message.
            assert code == 0 or output.startswith("error: "), output
        else:
            # Derived from the inventory: what validate accepted must render, and pass
            # the real `nginx -t`.
            assert code == 0 or "no gateway guest" in output, output
            if code == 0:
                failed = nginx_t(out / "tree")
                assert failed is None, f"validated, rendered, then {failed}"
    _proxmox_commands_are_valid(etc)
    return True


def _proxmox_commands_are_valid(etc: Path) -> None:
    """Every command of the offline Proxmox plan, against the newest API schema. A guest
    whose plan stops at a clean refusal (a missing recipe, an LXC-only template: what
    `plan --offline` prints as one error line) is checked up to that step."""
    inventory = load_inventory(etc)
    plan = Planner(inventory, OfflineDriver("proxmox"), PlanOptions(gateway=GATEWAY)).plan(None)
    walker = PlanPreview(Preview((9, 1)))
    for guest in plan.guests:
        for step in guest.steps:
            try:
                walker.step(step)
            except PhoenixError:
                break
    for command in walker.preview.commands:
        argv = [PLACEHOLDER.sub(ASSIGNED_MAC, a) for a in command.argv]
        problems = check_argv("9.1", argv).problems
        assert problems == [], f"validated, then an invalid Proxmox command: {problems}"


# -- 1. from the exported JSON Schema --------------------------------------------------------


@functools.cache
def _from_schema() -> st.SearchStrategy[Any]:
    """Built once: resolving and canonicalising the schema is most of the cost."""
    from hypothesis_jsonschema import from_schema

    return from_schema(inventory_schema("lxc"))


@seed(SEED)
@_settings(0.1)
@given(data=st.data())
def test_schema_generated_inventories(lab: Lab, data: st.DataObject) -> None:
    lxc = data.draw(_from_schema(), label="phoenix_lxc_configs.json")
    check_rule(lab.write(lxc, {"timezone": "UTC"}), lab.root / "out")


# -- 2. plausible labs -----------------------------------------------------------------------

IDS = [101, 102, 103, 104, 200, 900, 901, 950]
SOUND_NAMES = st.one_of(
    st.sampled_from(["gw", "model-a", "Copy-Base", "vllm-qwen2.5-7b-awq", "a.lab.local"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True),
)
ODD_NAMES = st.sampled_from(["a" * 64, "-x", "x_y", "", "gw\n"])
# Mostly a Proxmox volume id: then the offline Proxmox plan records every command (it
# stops, with a message, at an LXC-only template).
PVE_TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
TEMPLATES = st.sampled_from(
    [PVE_TEMPLATE, PVE_TEMPLATE, PVE_TEMPLATE, "/srv/t.tar.gz", "debootstrap:bookworm"]
)
SOUND_MODELS = st.one_of(
    st.sampled_from(["qwen", "ibm-granite/granite-3.3-8b", "m:latest", "a b", 'q"x', "\u00fc"]),
    st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp", "Cf")),
        min_size=1,
        max_size=40,
    ),
)
ODD_MODELS = st.sampled_from(["m" * 300, "", "x\ty"])
SOUND_PORTS = st.sampled_from([80, 443, "80", "80,443", "8000:8010", "1:65535", "22,80:90"])
ODD_PORTS = st.one_of(
    st.integers(-5, 70000), st.sampled_from(["8000-8010", "9:1", "0", "", ",".join("1" * 16)])
)
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["dhcp", "0101", "local-lvm:1,ro=1", "-oProxyCommand=x", "/", "..", ""]),
    st.sampled_from(["curl 'http://x", "\u00b2", "a\rb", "\x1b[2J", "m" * 5000, 10**200]),
    st.lists(st.integers(0, 1000), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


class Picker:
    """Draws sound choices, except at most one odd choice (at call number `odd_at`): an
    otherwise sound lab with one mistake is what reaches plan and render."""

    def __init__(self, draw: st.DrawFn, odd_at: int | None) -> None:
        self.draw = draw
        self.odd_at = odd_at
        self.calls = 0

    @property
    def sound(self) -> bool:
        return self.odd_at is None

    def __call__(self, sound: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
        self.calls += 1
        if self.calls - 1 == self.odd_at:
            return self.draw(odd)
        return self.draw(sound)

    def maybe(self) -> bool:
        return bool(self.draw(st.booleans()))


def _network(pick: Picker, host: int, dhcp: bool) -> dict[str, Any]:
    net: dict[str, Any] = {"name": "eth0", "bridge": pick.draw(st.sampled_from(["vmbr0", "br1"]))}
    if dhcp:
        net["ip"] = "dhcp"
        if pick.maybe():
            net["gw"] = "10.0.0.1"
        return net
    net["ip"] = pick(st.just(f"10.0.0.{host}/24"), st.sampled_from(["10.0.0.5", "x", "dhcp"]))
    net["gw"] = pick(st.just("10.0.0.1"), st.sampled_from(["10.0.1.1", f"10.0.0.{host}"]))
    return net


def _firewall(pick: Picker) -> dict[str, Any]:
    rules = []
    for _ in range(pick.draw(st.integers(0, 3))):
        rule: dict[str, Any] = {
            "type": pick.draw(st.sampled_from(["in", "out"])),
            "action": pick(st.sampled_from(["ACCEPT", "DROP", "REJECT"]), st.just("ALLOW")),
        }
        if pick.maybe():
            rule["proto"] = pick.draw(st.sampled_from(["tcp", "udp"]))
            if pick.maybe():
                rule["port"] = pick(SOUND_PORTS, ODD_PORTS)
        if pick.maybe():
            rule["source"] = pick(st.sampled_from(["10.0.0.153", "10.0.0.0/24"]), st.just("gw"))
        if pick.maybe():
            rule["comment"] = pick(st.sampled_from(["gateway only", "a # b", ""]), st.text())
        rules.append(rule)
    return {"enabled": pick.maybe(), "rules": rules}


# The edges of the gateway block: names nginx reserves or limits, paths the gateway
# serves itself or that normalise to the same location, ports that collide, URLs nginx
# would read as a variable or syntax (validate must refuse those; the rest must pass
# `nginx -t`).
GATEWAY_NAMES = st.one_of(
    st.sampled_from(["api.lab", "API.LAB", "x.y.z", "a", "phoenix-api", "10.0.0.150"]),
    st.sampled_from(["h0.lab", "H1.LAB", "default", "localhost", "_"]),
    st.builds(lambda n: "a" * n + ".lab", st.integers(58, 63)),
    st.builds(lambda n: ".".join(["b" * 60] * n), st.integers(2, 4)),
)
ROUTE_PATHS = st.sampled_from(
    ["/r0/", "/r0", "/x", "/x/", "/", "/v1/", "/v1", "/v1/models", "/v1/models/",
     "/phoenix/", "/phoenix/health/", "/phoenix/health", "/metrics", "/metrics/",
     "/phoenix/status", "/health", "/a//b/", "/a/./b/", "/V1/"]
)  # fmt: skip
ROUTE_URLS = st.sampled_from(
    ["http://127.0.0.1:9", "https://127.0.0.2:8443/x", "http://127.0.0.1/base",
     "http://127.0.0.1:8080/base/", "http://[::1]:8080/", "http://localhost:65535",
     "http://$http_x_up/", "http://127.0.0.1:99999/", "http://u:p@127.0.0.1/",
     "http://127.0.0.1/x\\", "http://127.0.0.1/a;b", "http://127.0.0.1/?x"]
)  # fmt: skip
PORTS = st.sampled_from([80, 443, 8080, 8443, 1, 65535])
KEY_NAMES = st.one_of(
    st.sampled_from(["default", "include", "hostnames", "volatile", "k", "k-1", "k_1", "0"]),
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,47}", fullmatch=True),
    st.just("k" * 48),
)


def _api_keys(pick: Picker, models: list[str]) -> list[dict[str, Any]]:
    many = pick.draw(st.sampled_from([1, 2, 3, 40, 300]))
    names = pick.draw(st.lists(KEY_NAMES, min_size=1, max_size=3, unique=True))
    names += [f"key-{i:03d}-" + "n" * 30 for i in range(many if many > 3 else 0)]
    keys = []
    for i, name in enumerate(names):
        key: dict[str, Any] = {"name": name, "sha256": f"{i:064x}"}
        if pick.maybe():
            key["rpm"] = pick.draw(st.sampled_from([1, 60, 1_000_000]))
        if pick.maybe() and models:
            key["models"] = pick.draw(st.lists(st.sampled_from(models), min_size=1, max_size=2))
        keys.append(key)
    return keys


def _gateway(pick: Picker, targets: list[int], models: list[str]) -> dict[str, Any]:
    block: dict[str, Any] = {}
    if pick.maybe():
        block["hostnames"] = pick.draw(st.lists(GATEWAY_NAMES, max_size=2, unique=True))
    if pick.maybe():
        block["tls"] = pick.maybe()
    if pick.maybe():
        block["http_port"] = pick.draw(PORTS)
        block["https_port"] = pick.draw(PORTS)
    if pick.maybe():
        block["api_keys"] = _api_keys(pick, models)
    if not targets:
        return block
    paths, hosts = [], []
    for i in range(pick.draw(st.integers(0, 3))):
        route: dict[str, Any] = {"path": pick.draw(ROUTE_PATHS) if pick.maybe() else f"/r{i}/"}
        if pick.maybe():
            route["url"] = pick.draw(ROUTE_URLS)
        else:
            route["ctid"] = pick(st.sampled_from(targets), st.sampled_from(IDS))
            route["port"] = pick.draw(st.sampled_from([80, 8000, 6333]))
        if pick.maybe():
            route["strip_prefix"] = pick.maybe()
        paths.append(route)
    for i in range(pick.draw(st.integers(0, 2))):
        name = pick.draw(GATEWAY_NAMES) if pick.maybe() else f"h{i}.lab"
        host: dict[str, Any] = {"hostname": name}
        if pick.maybe():
            host["url"] = pick.draw(ROUTE_URLS)
        else:
            host["ctid"] = pick(st.sampled_from(targets), st.sampled_from(IDS))
            host["port"] = 8080
        if pick.maybe():
            host["tls"] = pick.maybe()
        hosts.append(host)
    block["path_routes"] = paths
    block["host_routes"] = hosts
    return block


@st.composite
def labs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A lab: templates first (created, or cloned from earlier templates), then leaves
    cloned from a template or created; a sound lab breaks no rule, a hostile one may."""
    pick = Picker(draw, draw(st.one_of(st.none(), st.integers(0, 40))))
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=5, unique=True))
    n_templates = draw(st.integers(1, max(1, len(ids) - 1))) if len(ids) > 1 else 1
    dhcp = {c for c in ids if draw(st.integers(0, 5)) == 0}
    networked = {c for c in ids if c in dhcp or draw(st.integers(0, 4)) > 0}
    targets = [c for c in ids[n_templates:] if c in networked and c not in dhcp]
    leaves = ids[n_templates:]
    gateway_at: int | None = None
    if leaves and draw(st.integers(0, 3)) > 0:
        gateway_at = draw(st.sampled_from(leaves))
    guests: dict[str, Any] = {}
    for index, ctid in enumerate(ids):
        is_template = index < n_templates
        guest: dict[str, Any] = {"name": pick(SOUND_NAMES, ODD_NAMES)}
        sources = ids[: min(index, n_templates)]
        if not sources or draw(st.integers(0, 3)) == 0:
            guest["template"] = draw(TEMPLATES)
        else:
            source = pick(st.sampled_from(sources), st.sampled_from([*ids, 555]))
            guest["clone_from_ctid"] = draw(st.sampled_from([str(source), source]))
        if is_template:
            if pick.maybe():
                guest["is_template"] = True
                if not pick.sound and pick.maybe():
                    guest["enable_lifecycle_snapshots"] = True
            else:
                guest["template_snapshot_name"] = pick(
                    st.sampled_from(["final-form", "base"]),
                    st.sampled_from(["current", "vzdump", "x"]),
                )
        elif pick.maybe():
            guest["enable_lifecycle_snapshots"] = True
        guest["storage_size_gb"] = pick(st.just(8 * (index + 1)), st.sampled_from([1, 4]))
        if not pick.sound and pick.maybe():
            guest["unprivileged"] = pick.maybe()
        if ctid in networked:
            guest["network_config"] = _network(pick, 150 + index, ctid in dhcp)
        if pick.maybe():
            guest["mac_address"] = pick(
                st.sampled_from(["", f"52:54:00:12:34:{index:02x}"]), st.just("01:00:5e:0:0:1")
            )
        if pick.maybe():
            guest["firewall"] = _firewall(pick)
        for key, sound, odd in (
            ("memory_mb", st.sampled_from([512, 2048]), st.sampled_from([8, "2048"])),
            ("cores", st.integers(1, 4), st.just(0)),
            (
                "storage_pool",
                st.sampled_from(["local", "local-lvm", "quickOS-lxc-disks"]),
                st.just("local-lvm:1,ro=1"),
            ),
            (
                "features",
                st.lists(st.sampled_from(["base_setup", "base_setup", "warp"]), max_size=2),
                st.just(["a b"]),
            ),
            (
                "pct_options",
                st.lists(st.sampled_from(["nesting=1", "keyctl=1", "fuse=0"]), max_size=2),
                st.just(["nesting=maybe"]),
            ),
            (
                "lxc_options",
                st.lists(
                    st.sampled_from(["lxc.mount.auto: sys:rw", "lxc.apparmor.profile=unconfined"]),
                    max_size=2,
                ),
                st.just(["lxc.apparmor.profile: x\rmp0: /,mp=/mnt"]),
            ),
            ("start_at_boot", st.booleans(), st.just("yes")),
            ("boot_order", st.integers(0, 5), st.just(-1)),
            (
                "dependencies",
                st.lists(st.sampled_from(ids[:index]), max_size=2, unique=True)
                if index
                else st.just([]),
                st.lists(st.sampled_from([*ids, 777]), max_size=2),
            ),
            (
                "health_check",
                st.sampled_from([{"command": "true"}, {"command": "curl -sf http://x/h"}]),
                st.just({"command": "curl 'http://x"}),
            ),
            (
                "vllm_engine_config",
                st.builds(
                    lambda name, port: {"ServerConfig": {"served_model_name": name, "port": port}},
                    SOUND_MODELS,
                    st.sampled_from([8000, 8001]),
                ),
                st.builds(lambda n: {"ServerConfig": {"served_model_name": n}}, ODD_MODELS),
            ),
            ("vllm_served_model_name", SOUND_MODELS, ODD_MODELS),
            (
                "mount_points",
                st.just([{"host_path": "/srv/m", "container_path": "/m", "read_only": True}]),
                st.just([{"host_path": "/srv/m"}]),
            ),
        ):
            if draw(st.integers(0, 3)) == 0:
                guest[key] = pick(sound, odd)
        if ctid == gateway_at:
            guest["gateway"] = _gateway(pick, targets, ["qwen", "m:latest", "a b", "*"])
        elif not pick.sound and draw(st.integers(0, 5)) == 0:
            guest["application_script"] = "phoenix_hypervisor_lxc_101.sh"
        guests[str(ctid)] = guest
    hypervisor: dict[str, Any] = {"timezone": "UTC"}
    if pick.maybe():
        dns = pick(st.sampled_from(["8.8.8.8", ["8.8.8.8", "1.1.1.1"]]), st.just(8))
        hypervisor["network"] = {"interfaces": {"dns_nameservers": dns}}
    return {"lxc_configs": guests}, hypervisor


ODD_KEYS = st.sampled_from(
    ["0101", "\u00b2", "\uff11\uff10\uff11", "\u0661\u0660\u0661", "42", "x"]
)


T = TypeVar("T")


class Draw(Protocol):
    """`st.DataObject.draw`, what the tests hand in (hypothesis's DrawFn is the type of
    @composite's draw, which mypy does not match with DataObject.draw)."""

    def __call__(self, strategy: st.SearchStrategy[T], label: Any = None) -> T: ...


def _rename_guest(data: Any, draw: Draw) -> Any:
    configs = data.get("lxc_configs") if isinstance(data, dict) else None
    if isinstance(configs, dict) and configs:
        key = draw(st.sampled_from(sorted(configs)))
        configs[draw(ODD_KEYS)] = configs.pop(key)
    return data


def _mutate(data: Any, draw: Draw, times: int) -> Any:
    """Replace or drop `times` randomly chosen values anywhere in `data`; maybe give a
    guest an odd CTID key."""
    if draw(st.integers(0, 5)) == 0:
        data = _rename_guest(data, draw)
    for _ in range(times):
        paths: list[list[Any]] = []
        stack: list[tuple[Any, list[Any]]] = [(data, [])]
        while stack:
            node, path = stack.pop()
            if path:
                paths.append(path)
            if isinstance(node, dict):
                stack.extend((v, [*path, k]) for k, v in node.items())
            elif isinstance(node, list):
                stack.extend((v, [*path, i]) for i, v in enumerate(node))
        if not paths:
            return data
        path = draw(st.sampled_from(sorted(paths, key=repr)))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.integers(0, 4)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ODD)
    return data


@seed(SEED)
@_settings(0.55)
@given(data=st.data())
def test_generated_labs(lab: Lab, data: st.DataObject) -> None:
    lxc, hypervisor = data.draw(labs(), label="lab")
    if data.draw(st.integers(0, 3), label="mutate?") == 0:
        lxc = _mutate(lxc, data.draw, data.draw(st.integers(1, 3), label="mutations"))
    check_rule(lab.write(lxc, hypervisor), lab.root / "out")


# -- 3. mutations of the real inventories ----------------------------------------------------


def _fixture(name: str) -> tuple[Any, Any]:
    folder = shared_fixture(name)
    return json.loads((folder / LXC).read_text()), json.loads((folder / HYP).read_text())


@seed(SEED)
@_settings(0.35)
@given(data=st.data())
def test_mutated_fixtures(lab: Lab, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(FIXTURES), label="fixture")
    lxc, hypervisor = _fixture(name)
    which = data.draw(st.sampled_from(["lxc", "lxc", "lxc", "hypervisor"]), label="file")
    times = data.draw(st.integers(1, 4), label="mutations")
    if which == "lxc":
        lxc = _mutate(lxc, data.draw, times)
    else:
        hypervisor = _mutate(hypervisor, data.draw, times)
    etc = lab.write(lxc, hypervisor, shared_fixture(name))
    if data.draw(st.integers(0, 2), label="repeat a key?") == 0:
        _repeat_a_key(etc / (LXC if which == "lxc" else HYP), data.draw)
    check_rule(etc, lab.root / "out", ("auto", "derived"))


def _repeat_a_key(path: Path, draw: Draw) -> None:
    """Write one `"key": value,` line twice, maybe with another value, maybe behind a BOM:
    what the original tool's history has (jq took the last value)."""
    lines = json.dumps(json.loads(path.read_text()), indent=2).split("\n")
    candidates = [i for i, line in enumerate(lines) if line.endswith(",") and '": ' in line]
    if not candidates:
        return
    index = draw(st.sampled_from(candidates), label="repeated line")
    line = lines[index]
    if draw(st.booleans(), label="another value?"):
        key = line.split('": ', 1)[0]
        line = f'{key}": {json.dumps(draw(ODD, label="its value"))},'
    lines.insert(index + 1, line)
    bom = "\ufeff" if draw(st.booleans(), label="BOM?") else ""
    path.write_text(bom + "\n".join(lines))


def test_the_real_inventories_satisfy_the_rule(lab: Lab) -> None:
    for name in FIXTURES:
        lxc, hypervisor = _fixture(name)
        etc = lab.write(lxc, hypervisor, shared_fixture(name))
        assert check_rule(etc, lab.root / "out", ("auto", "derived"))
