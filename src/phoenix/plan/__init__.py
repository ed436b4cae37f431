"""Planning and executing: desired (inventory) vs observed (driver) -> ordered steps -> run.

planner.plan(...)     -> Plan (data, JSON form), pure w.r.t. the host
executor.Executor.run -> runs a Plan under the host lock, journaling every step
"""

from phoenix.plan.events import Event, Reporter
from phoenix.plan.model import Change, GuestPlan, Plan, Step

__all__ = ["Change", "Event", "GuestPlan", "Plan", "Reporter", "Step"]
