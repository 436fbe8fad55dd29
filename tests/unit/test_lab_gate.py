"""The confirm gate of require_approval in JupyterLab: nothing is applied without a click
on Confirm under the plan; a confirmation is for that exact plan (decisions), used once;
plans made again must match it (else StalePlan); the headless path is unchanged."""
from __future__ import annotations

import pytest

from fedcloud_lib.errors import StalePlan
from fedcloud_lib.lab import gate, session
from fedcloud_lib.lab.session import STATE, FormDecision
from fedcloud_lib.plan import Plan, Step, StopAfterPlan, require_approval

pytestmark = pytest.mark.unit


def plan(flavor="f1", detail="m1.small", extra=()):
    return Plan.of("instance web for ticket 42",
                   [Step("create", "server", "web", detail, {"flavor_id": flavor}),
                    Step("reuse", "security group", "fedcloud-standard"), *extra])


@pytest.fixture
def lab(monkeypatch):
    """An interactive kernel; the gates shown are collected instead of displayed."""
    STATE.reset()
    monkeypatch.delenv("FEDCLOUD_RUN_ID", raising=False)
    monkeypatch.delenv("FEDCLOUD_RUN_DIR", raising=False)
    monkeypatch.setattr(session, "interactive", lambda: True)
    shown: list[gate.PlanGate] = []
    monkeypatch.setattr(gate, "show", lambda p: shown.append(gate.PlanGate(p)) or shown[-1])
    yield shown
    STATE.reset()


def test_nothing_is_applied_before_confirm_even_with_approve(lab):
    with pytest.raises(StopAfterPlan, match="press Confirm"):
        require_approval(plan(), True)  # approve is the headless switch
    with pytest.raises(StopAfterPlan):
        require_approval(plan(), False)
    [g1, g2] = lab
    assert "1 to create" in g1.button.description
    assert "create" in g1.changes.value and "server" in g1.changes.value
    assert "fedcloud-standard" not in g1.changes.value  # only what changes
    assert STATE.applied == []


def test_confirmed_plan_is_applied_once(lab):
    with pytest.raises(StopAfterPlan):
        require_approval(plan(), False)
    lab[0].button.click()
    assert lab[0].button.disabled and "Confirmed" in lab[0].status.value
    confirmed_plan = lab[0].plan
    # Run All again: the plan is made again (new object, other words, same decisions)
    again = plan(detail="m1.small (reworded)")
    assert require_approval(again, False) is confirmed_plan
    assert STATE.applied == [confirmed_plan]
    # the confirmation is used up: the next run asks again
    with pytest.raises(StopAfterPlan):
        require_approval(plan(), False)


def test_a_plan_that_changed_since_the_click_is_stale_and_not_applied(lab):
    with pytest.raises(StopAfterPlan):
        require_approval(plan(), False)
    lab[0].confirm()
    with pytest.raises(StalePlan, match="flavor_id changed") as err:
        require_approval(plan(flavor="f2"), False)
    assert "Nothing was changed" in str(err.value)
    assert STATE.applied == []
    with pytest.raises(StopAfterPlan):  # and the new plan needs its own click
        require_approval(plan(flavor="f2"), False)


def test_new_form_values_void_confirmed_plans(lab):
    with pytest.raises(StopAfterPlan):
        require_approval(plan(), False)
    lab[0].confirm()
    STATE.confirm_form(FormDecision(("x",), {"x": 1}, {"x": 2}, "op", "now"))
    with pytest.raises(StopAfterPlan):
        require_approval(plan(), False)


def test_a_plan_without_changes_needs_no_click(lab):
    quiet = Plan.of("p", [Step("reuse", "server", "web")])
    assert require_approval(quiet, False) is quiet and lab == []
    assert STATE.applied == [quiet]


def test_headless_outside_a_kernel_is_unchanged(monkeypatch):
    STATE.reset()
    monkeypatch.delenv("FEDCLOUD_RUN_DIR", raising=False)
    monkeypatch.setattr(session, "shell", lambda: None)
    with pytest.raises(StopAfterPlan, match="approve=True"):
        require_approval(plan(), False)
    p = plan()
    assert require_approval(p, True) is p


def test_under_the_engine_a_kernel_is_headless(monkeypatch):
    STATE.reset()
    monkeypatch.setenv("FEDCLOUD_RUN_ID", "20260101T000000-abcdef")
    monkeypatch.delenv("FEDCLOUD_RUN_DIR", raising=False)
    monkeypatch.setattr(session, "shell", lambda: object())
    assert not session.interactive()
    p = plan()
    assert require_approval(p, True) is p
    with pytest.raises(StopAfterPlan, match="--approve-plan"):
        require_approval(plan(), False)
