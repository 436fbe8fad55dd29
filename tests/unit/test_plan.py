import pytest

from fedcloud_lib.plan import Action, Plan, StopAfterPlan, require_approval

pytestmark = pytest.mark.unit


def test_plan_table_and_summary():
    plan = Plan.of("ticket 42", [Action("create", "server", "web01", "m1.small"),
                                 Action("reuse", "keypair", "alice"),
                                 Action("delete", "rule", "tcp 8080")])
    df = plan.to_frame()
    assert list(df.columns) == ["action", "kind", "name", "detail"]
    assert df.shape == (3, 4) and df.iloc[0]["name"] == "web01"
    assert plan.summary() == "ticket 42: 1 to create, 1 to reuse, 1 to delete"
    assert [a.name for a in plan.changes] == ["web01", "tcp 8080"]
    assert "<table" in plan._repr_html_()


def test_unapproved_plan_with_changes_stops_the_run():
    plan = Plan.of("p", [Action("create", "server", "a")])
    with pytest.raises(StopAfterPlan, match="approve=True"):
        require_approval(plan, False)
    assert require_approval(plan, True) is plan
    nothing = Plan.of("p", [Action("reuse", "server", "a")])
    assert require_approval(nothing, False) is nothing


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="action must be one of"):
        Action("destroy", "server", "a")
