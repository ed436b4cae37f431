"""A VM's `docker_stacks` and NFS `volumes` planned and converged as bundles of their own
(on the fake backends of test_vm_plan): a stack in the original's folder layout is a step
until its digest is in the guest, a changed file re-deploys only that stack, a missing
folder is a step that cannot run naming the exact path, and volumes come before stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.plan.model import Unrunnable
from phoenix.plan.planner import PlanOptions, plan
from tests.unit.plan.test_vm_plan import VmLab


@pytest.fixture
def lab(tmp_path: Path) -> VmLab:
    return VmLab(tmp_path)


NFS = {
    "type": "nfs",
    "name": "persistent",
    "server": "10.250.0.5",
    "path": "/srv/nfs/9101",
    "mount_point": "/persistent-storage",
}


def _stack(etc: Path, name: str = "qdrant_service") -> Path:
    folder = etc / "stacks" / name
    (folder / "configs").mkdir(parents=True)
    (folder / "docker-compose.yml").write_text("services:\n  app:\n    image: busybox\n")
    (folder / "configs" / "production.env").write_text("PORT=6333\n")
    return folder


def _with(lab: VmLab, **keys: object) -> None:
    vms = lab.vms
    vms[1] = {**vms[1], **keys}
    lab.write_vms(vms)


def _details(lab: VmLab, vmid: int = 9101) -> list[str]:
    return [
        s.describe() for s in plan(lab.inventory, lab.split, None, PlanOptions()).guest(vmid).steps
    ]


def test_stacks_and_volumes_converge_and_a_rerun_changes_nothing(lab: VmLab) -> None:
    folder = _stack(lab.etc)
    _with(
        lab,
        volumes=[NFS],
        docker_stacks=[{"name": "qdrant_service", "environment": "production"}],
    )
    details = _details(lab)
    assert details.index("volumes /persistent-storage (unless already applied)") < details.index(
        "stack qdrant_service (production) (unless already applied)"
    )
    assert details.index("feature docker (unless already applied)") < details.index(
        "volumes /persistent-storage (unless already applied)"
    )
    outcome = lab.converge()
    assert outcome.result.ok, outcome.result.failed
    assert lab.mutations_during(lambda: lab.converge()) == []
    assert plan(lab.inventory, lab.split, None, PlanOptions()).up_to_date
    # a changed compose file re-deploys that stack and nothing else
    (folder / "docker-compose.yml").write_text("services:\n  app:\n    image: busybox:1\n")
    steps = [s for s in _details(lab) if not s.startswith("health check")]
    assert steps == ["stack qdrant_service (production)"]


def test_a_stack_whose_folder_is_missing_cannot_run_and_names_the_path(lab: VmLab) -> None:
    _with(lab, docker_stacks=[{"name": "qdrant_service", "environment": "production"}])
    the_plan = plan(lab.inventory, lab.split, None, PlanOptions())
    blocked = [s for s in the_plan.guest(9101).steps if isinstance(s, Unrunnable)]
    expected = lab.etc / "stacks" / "qdrant_service" / "docker-compose.yml"
    assert [s.error for s in blocked] == [f"no compose file: {expected} not found"]
    result = lab.converge()
    assert not result.result.ok  # the executor refuses the step, it does not crash


def test_an_environment_the_stack_does_not_have_cannot_run(lab: VmLab) -> None:
    _stack(lab.etc)
    _with(lab, docker_stacks=[{"name": "qdrant_service", "environment": "staging"}])
    (blocked,) = [s for s in _details(lab) if "cannot run" in s]
    stack = lab.etc / "stacks" / "qdrant_service"
    assert (
        f"environment 'staging' is neither in {stack / 'phoenix.json'} (environments: none) "
        f"nor a file {stack / 'configs' / 'staging.env'}"
    ) in blocked


def test_changing_a_stack_does_not_rerun_the_vms_features(lab: VmLab) -> None:
    """Features see only `features` of a VM: a new stack or volume is its own step."""
    assert lab.converge().result.ok
    _stack(lab.etc)
    _with(
        lab,
        volumes=[NFS],
        docker_stacks=[{"name": "qdrant_service", "environment": "production"}],
    )
    steps = [s for s in _details(lab) if not s.startswith("health check")]
    assert steps == ["volumes /persistent-storage", "stack qdrant_service (production)"]
