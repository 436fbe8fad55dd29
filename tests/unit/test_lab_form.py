"""The parameter form: widgets from the declarations, inline problems by validate_values,
FormPending until confirmed, the confirmed values kept for the next "Run All", silent
under the engine."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from fedcloud_lib.errors import RunbookError
from fedcloud_lib.lab import form as form_mod
from fedcloud_lib.lab import session
from fedcloud_lib.lab.form import FormPending, ParameterForm, declarations, form
from fedcloud_lib.lab.session import STATE
from fedcloud_lib.params import parse_parameters_cell

pytestmark = pytest.mark.unit

CELL = '''ticket: str = ""  # request ticket [required; pattern=[0-9]+]
cloudlet: str = "testing"  # which cloudlet [choices=production|testing]
volume_gb: int = 0  # size of /srv [min=0; max=500]
db_password: str = ""  # database password [secret]
hosts: list = [{"name": "vm"}]  # inventory [min=1]
verbose: bool = False  # more output
approve: bool = False  # apply the plan
'''
SPECS = parse_parameters_cell(CELL)


def make(values=None, **kw):
    got = []
    f = ParameterForm(SPECS, values or {}, runbook="demo", on_confirm=got.append, **kw)
    return f, got


def by_name(f, name):
    return next(x for x in f.fields if x.name == name)


@pytest.fixture(autouse=True)
def clean_state():
    STATE.reset()
    yield
    STATE.reset()


def test_widgets_follow_the_declarations():
    import ipywidgets as w

    f, _ = make()
    kinds = {x.name: type(x.input) for x in f.fields}
    assert kinds == {"ticket": w.Text, "cloudlet": w.Dropdown, "volume_gb": w.Text,
                     "db_password": w.Password, "hosts": w.Textarea, "verbose": w.Checkbox}
    assert "approve" not in kinds  # interactively the button under the plan approves
    assert list(by_name(f, "cloudlet").input.options) == ["production", "testing"]
    assert by_name(f, "cloudlet").input.value == "testing"
    assert by_name(f, "hosts").input.value == '[{"name": "vm"}]'
    ticket = by_name(f, "ticket")
    assert "request ticket" in ticket.help.value and "matching /[0-9]+/" in ticket.help.value
    assert "fedcloud-field-ticket" in ticket.box._dom_classes


def test_problems_show_inline_in_validate_values_words():
    f, _ = make()
    ticket, size = by_name(f, "ticket"), by_name(f, "volume_gb")
    assert "a value is required" in ticket.error.value  # shown from the start
    ticket.input.value = "12a"
    assert "does not match /[0-9]+/" in ticket.error.value
    ticket.input.value = "123"
    assert ticket.error.value == ""
    size.input.value = "600"
    assert "above the maximum 500" in size.error.value
    size.input.value = "ten"
    assert "expected int, got str" in size.error.value
    size.input.value = "10"
    assert size.error.value == "" and size.value() == 10
    hosts = by_name(f, "hosts")
    hosts.input.value = "[]"
    assert "below the minimum 1" in hosts.error.value


def test_confirm_refuses_until_every_value_is_allowed_then_hands_typed_values():
    f, got = make()
    assert f.confirm() is None and got == []
    assert "ticket" in f.status.value
    by_name(f, "ticket").input.value = "42"
    by_name(f, "volume_gb").input.value = "5"
    by_name(f, "db_password").input.value = "s3cret-pw"
    values = f.confirm()
    assert got == [values]
    assert values["ticket"] == "42" and values["volume_gb"] == 5 and values["approve"] is False
    assert values["hosts"] == [{"name": "vm"}] and values["db_password"] == "s3cret-pw"
    # locked: fields disabled, the browser's copy of the secret dropped, the kernel keeps it
    assert all(x.input.disabled for x in f.fields) and f.use.disabled
    assert by_name(f, "db_password").input.value == ""
    assert f.values()["db_password"] == "s3cret-pw"
    assert "Values set" in f.status.value


def test_a_secret_value_is_never_shown_in_a_problem():
    cell = 'pw: str = ""  # password [required; secret; min=12]\n'
    form_ = ParameterForm(parse_parameters_cell(cell), {}, runbook="demo", on_confirm=print)
    pw = form_.fields[0]
    pw.input.value = "short-pw"
    assert "below the minimum 12" in pw.error.value and "short-pw" not in pw.error.value


# ------------------------------------------------------------------ form()
class FakeShell:
    def __init__(self, history):
        self.history_manager = SimpleNamespace(input_hist_raw=["", *history])
        self.kernel = object()


@pytest.fixture
def kernel(monkeypatch):
    """An interactive kernel: form() sees a shell with the parameters cell in its history."""
    shown = []
    monkeypatch.delenv("FEDCLOUD_RUN_ID", raising=False)
    sh = FakeShell([CELL, "fedcloud_lib.form(globals())"])
    monkeypatch.setattr(session, "shell", lambda: sh)
    monkeypatch.setattr(form_mod.transcript, "install", lambda: True)
    monkeypatch.setattr(form_mod.archive, "install", lambda: None)
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    return SimpleNamespace(shell=sh, shown=shown)


def namespace():
    ns = {}
    exec(CELL, ns)  # what running the parameters cell does
    return ns


def test_form_stops_run_all_until_confirmed_then_keeps_the_values(kernel):
    ns = namespace()
    with pytest.raises(FormPending, match="Use these values"):
        form(ns)
    [view] = kernel.shown
    assert "fedcloud-form" in view._dom_classes
    assert ns["ticket"] == ""  # nothing set before the operator confirms
    # the operator fills the form and confirms (the widget's own button handler)
    f = STATE.form
    assert f is None
    fields = {c._dom_classes[-1]: c for c in view.children if c._dom_classes}
    text = fields["fedcloud-field-ticket"].children[0].children[1]
    text.value = "77"
    import datetime as dt

    from fedcloud_lib import plan as plan_mod

    old = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    plan_mod._PLANNING_TIMES["interactive"] = old
    buttons = view.children[-2].children
    buttons[0].click()
    assert plan_mod.planning_time() > old  # a new request: its plans count from now
    assert ns["ticket"] == "77" and STATE.form.values["ticket"] == "77"
    # Run All again: the parameters cell resets the variables; the form puts them back
    ns2 = namespace()
    form(ns2)
    assert ns2["ticket"] == "77" and ns2["volume_gb"] == 0
    # running the form cell alone (variables already set) goes on too
    form(ns2)
    # the parameters cell edited: the form asks again, with the edited values
    ns3 = namespace()
    ns3["volume_gb"] = 9
    with pytest.raises(FormPending):
        form(ns3)
    assert ns3["ticket"] == ""


def test_form_is_silent_under_the_engine(kernel, monkeypatch):
    monkeypatch.setenv("FEDCLOUD_RUN_ID", "20260101T000000-abcdef")
    ns = namespace()
    ns["ticket"] = "5"  # injected by papermill
    assert form(ns) is None
    assert kernel.shown == [] and ns["ticket"] == "5"


def test_form_outside_a_kernel_does_nothing(monkeypatch):
    monkeypatch.delenv("FEDCLOUD_RUN_ID", raising=False)
    monkeypatch.setattr(session, "shell", lambda: None)
    assert form({"x": 1}) is None


def test_declarations_come_from_the_cell_that_ran(kernel):
    assert [s.name for s in declarations(namespace())] == [s.name for s in SPECS]


def test_declarations_without_history_come_from_the_notebook_in_the_directory(
        kernel, monkeypatch, tmp_path):
    import nbformat

    kernel.shell.history_manager.input_hist_raw = []  # nbval keeps no history
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Demo\n\nDoes things."),
                nbformat.v4.new_code_cell(CELL, metadata={"tags": ["parameters"]})]
    nbformat.write(nb, tmp_path / "demo.ipynb")
    other = nbformat.v4.new_notebook()
    other.cells = [nbformat.v4.new_markdown_cell("# Other\n\nOther."),
                   nbformat.v4.new_code_cell("x: int = 1  # x", metadata={"tags": ["parameters"]})]
    nbformat.write(other, tmp_path / "other.ipynb")
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(CELL, ns)
    specs, name = form_mod.find_declarations(ns)
    assert name == "demo" and [s.name for s in specs] == [s.name for s in SPECS]
    with pytest.raises(RunbookError, match="no parameters cell"):
        form_mod.find_declarations({"__annotations__": {"nothing": str}})
