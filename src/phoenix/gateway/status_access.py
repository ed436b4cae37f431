"""Who may read the gateway's status endpoints (/metrics, /phoenix/status, /phoenix/,
/phoenix/health): they need no API key, but name backends, models, keys and counts.

- By address: the gateway itself (loopback) and `gateway.status_allow` (CIDRs; default:
  the gateway's own subnet, where the host sits on its bridge).
- By key: an operator key (`gateway.operator_keys`, `phoenix gateway key add NAME
  --operator`) sent as `Authorization: Bearer <key>` reads them from any address: a
  Prometheus or a dashboard elsewhere, without opening the endpoints to a whole network.

Without operator keys the rule is nginx's `allow`/`deny`. With them, the address and the
key are combined in a `map` (nginx's access phase has no "address or key"): the key is
hashed in njs (`js_set`) only when a status endpoint is read, never on the API's path.
Anyone else gets 403 `forbidden` (JSON).
"""

from __future__ import annotations

from phoenix.gateway.nginx import Directive, blk, d
from phoenix.inventory.models import OperatorKey

LOOPBACK = ("127.0.0.1", "::1")
STATUS_ADDR_VAR = "$phx_status_addr"
OPERATOR_VAR = "$phx_operator"
DENIED_VAR = "$phx_status_denied"


def allowed_nets(allow: list[str] | None, subnet: str | None) -> list[str] | None:
    """The networks besides loopback that may read the status; None: no rule at all (a
    DHCP gateway with no `status_allow` and no operator key: the endpoints stay open)."""
    return allow if allow is not None else ([subnet] if subnet else None)


def http_directives(
    allow: list[str] | None, subnet: str | None, operators: list[OperatorKey]
) -> list[Directive]:
    """http-level (in the API site's file): the address and key variables, when operator
    keys exist."""
    if not operators:
        return []
    nets = [*LOOPBACK, *(allowed_nets(allow, subnet) or [])]
    return [
        blk("geo", STATUS_ADDR_VAR, body=[d("default", 0), *(d(n, 1) for n in nets)]),
        d("js_set", OPERATOR_VAR, "router.operatorName"),
        blk(
            "map",
            f"{STATUS_ADDR_VAR}:{OPERATOR_VAR}",
            DENIED_VAR,
            body=[
                d("default", 1),
                d("~^1:", ""),  # an allowed address
                d("~^0:.", ""),  # an operator key, from anywhere
            ],
        ),
    ]


def guard(
    allow: list[str] | None, subnet: str | None, operators: list[OperatorKey]
) -> list[Directive]:
    """In each status endpoint's location: who may read it."""
    if operators:
        return [blk("if", DENIED_VAR, body=[d("return", 403)])]
    nets = allowed_nets(allow, subnet)
    if nets is None:
        return []
    return [*(d("allow", n) for n in [*LOOPBACK, *nets]), d("deny", "all")]


def njs_table(operators: list[OperatorKey]) -> dict[str, str] | None:
    """sha256 -> operator key name for the njs router; None without operator keys."""
    return {k.sha256: k.name for k in operators} or None
