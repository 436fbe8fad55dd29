"""The parameter form a runbook shows in JupyterLab, right after its parameters cell.

Every runbook's cell after the parameters cell is:

>>> import fedcloud_lib
>>> fedcloud_lib.form(globals())

In JupyterLab (any kernel not started by the engine) it shows a form made from the
parameters cell's declarations — the ones ``fedcloud describe`` reads: a text field per
parameter (a dropdown for ``choices``, a checkbox for ``bool``, a password field for
``secret``), its help and what is allowed, and under each field the problem with its value,
checked as the operator types by :func:`fedcloud_lib.params.validate_values` — the code
that checks ``fedcloud run -p NAME VALUE`` (a field's text is read as ``-p`` reads it).

Until the operator presses "Use these values", the cell raises :class:`FormPending`, which
stops "Run All" with one line (no traceback): nothing below the form runs.  Pressing it
puts the values into the notebook's variables; running the notebook again, the form keeps
them (shown read-only, with "Edit") as long as the parameters cell is not edited.

Under the engine (``fedcloud run``) the call does nothing: the injected values win.
"""
from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..context import operator_name, utcnow
from ..errors import FedcloudError, ParameterError, RunbookError
from ..params import ParamSpec, parse_override, parse_parameters_cell, validate_values
from ..plan import new_planning_time
from ..runbooks import Runbook
from . import archive, session, transcript
from .session import STATE, FormDecision

__all__ = ["form", "FormPending", "ParameterForm", "declarations", "find_declarations"]

# `approve` is the headless switch; interactively the button under the plan approves
_NOT_IN_FORM = ("approve",)
_HISTORY_DEPTH = 50
_ALLOWED_TAIL = re.compile(r"\s*\((?:given [^;]*; )?allowed: .*\)$")


class FormPending(Exception):
    """Raised by :func:`form` to stop "Run All" until the operator confirmed the form."""

    def _render_traceback_(self) -> list[str]:
        return [f"Waiting for the form: {self}"]


def declarations(namespace: dict) -> list[ParamSpec]:
    """The parameter declarations of the notebook running in this kernel (see
    :func:`find_declarations`)."""
    return find_declarations(namespace)[0]


def find_declarations(namespace: dict) -> tuple[list[ParamSpec], str]:
    """The parameter declarations of the notebook running in this kernel.

    In order: the parameters cell as it last ran here (IPython's input history: the cell
    that parses as declarations of variables the notebook has); the parameters cell of the
    notebook file the Jupyter server named (``__session__``); the one notebook of the
    kernel's directory whose parameters cell declares exactly the variables annotated in
    the namespace (kernels that keep no history, e.g. nbval's).  RunbookError otherwise.
    """
    sh = session.shell()
    history = list(getattr(getattr(sh, "history_manager", None), "input_hist_raw", []) or [])
    for source in reversed(history[-_HISTORY_DEPTH:]):
        if ":" not in source or "=" not in source:
            continue
        try:
            specs = parse_parameters_cell(source)
        except RunbookError:
            continue
        if specs and all(s.name in namespace for s in specs):
            return specs, session.runbook_name(namespace)
    path = session.notebook_path(namespace)
    if path is not None and path.is_file():
        return Runbook(path.stem, path).parameters, path.stem
    declared = list((namespace.get("__annotations__") or {}))
    if declared:
        found = []
        for nb_path in sorted(Path.cwd().glob("*.ipynb")):
            try:
                specs = Runbook(nb_path.stem, nb_path).parameters
            except FedcloudError:
                continue
            if [s.name for s in specs] == declared:
                found.append((specs, nb_path.stem))
        if len(found) == 1:
            return found[0]
    raise RunbookError("form: no parameters cell has run in this kernel; run the notebook "
                       "from the top (Run ▸ Run All Cells)")


# --------------------------------------------------------------------------- fields
def _shown_value(spec: ParamSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.type.base in ("list", "dict"):
        return json.dumps(value)
    return str(value)


class _Field:
    """One parameter: its input, help and the problem with its value."""

    def __init__(self, spec: ParamSpec, value: Any, runbook: str):
        import ipywidgets as w

        self.spec, self.runbook = spec, runbook
        layout = w.Layout(width="32em")
        if spec.choices is not None and spec.type.base == "list":
            self.input = w.SelectMultiple(options=list(spec.choices), layout=layout,
                                          value=[v for v in (value or []) if v in spec.choices])
        elif spec.choices is not None:
            options = list(spec.choices)
            self.input = w.Dropdown(options=options, layout=layout,
                                    value=value if value in options else None)
        elif spec.type.base == "bool":
            self.input = w.Checkbox(value=bool(value), indent=False)
        elif spec.secret:
            self.input = w.Password(value=_shown_value(spec, value), layout=layout)
        elif spec.type.base in ("list", "dict"):
            self.input = w.Textarea(value=_shown_value(spec, value), continuous_update=True,
                                    layout=w.Layout(width="32em", height="5em"))
        else:
            self.input = w.Text(value=_shown_value(spec, value), continuous_update=True,
                                layout=layout)
        self.input.add_class("fedcloud-input")
        mark = ' <span title="required" style="color:#b00">*</span>' if spec.required else ""
        label = w.HTML(f"<b>{html.escape(spec.name)}</b>{mark}", layout=w.Layout(width="12em"))
        help_text = html.escape(spec.help) + (" " if spec.help else "")
        self.help = w.HTML(f'<span style="color:#555">{help_text}<i>({html.escape(spec.allowed)})'
                           f"</i></span>", layout=w.Layout(margin="0 0 0 12em"))
        self.error = w.HTML("", layout=w.Layout(margin="0 0 0 12em"))
        self.error.add_class("fedcloud-error")
        self.box = w.VBox([w.HBox([label, self.input]), self.help, self.error])
        self.box.add_class("fedcloud-field")
        self.box.add_class(f"fedcloud-field-{spec.name}")

    @property
    def name(self) -> str:
        return self.spec.name

    def value(self) -> Any:
        """The value as the runbook will get it (text read like ``-p NAME VALUE``)."""
        raw = self.input.value
        if self.spec.type.base == "bool" and self.spec.choices is None:
            return bool(raw)
        if self.spec.choices is not None:
            if self.spec.type.base == "list":
                return list(raw)
            return "" if raw is None else raw
        return parse_override(self.spec, raw)

    def problem(self) -> str | None:
        """What is wrong with the value (validate_values' words), or None."""
        try:
            validate_values([self.spec], {self.name: self.value()}, runbook=self.runbook)
        except ParameterError as exc:
            return "; ".join(p.split(": ", 1)[1] if p.startswith(f"{self.name}: ") else p
                             for p in exc.problems)
        return None

    def show_problem(self) -> str | None:
        text = self.problem()
        # what is allowed is on the help line just above: not repeated under the field
        short = None if text is None else _ALLOWED_TAIL.sub("", text)
        self.error.value = ("" if short is None else
                            f'<span style="color:#b00">&#9888; {html.escape(short)}</span>')
        return text

    def lock(self, locked: bool) -> None:
        self.input.disabled = locked
        if locked and self.spec.secret and hasattr(self.input, "placeholder"):
            # the value stays in the kernel; the browser's copy is dropped
            self.input.placeholder = "(set)" if self.input.value else ""
            self.input.value = ""


class ParameterForm:
    """The form: a field per declared parameter (but ``approve``), "Use these values",
    "Edit" and "Archive this run", and a status line."""

    def __init__(self, specs: list[ParamSpec], values: dict, *, runbook: str,
                 on_confirm: Callable[[dict], None], on_edit: Callable[[], None] | None = None,
                 on_archive: Callable[[], str] | None = None, confirmed: bool = False):
        import ipywidgets as w

        self.specs, self.runbook = specs, runbook
        self._on_confirm, self._on_edit, self._on_archive = on_confirm, on_edit, on_archive
        self.fields = [_Field(s, values.get(s.name, s.default), runbook)
                       for s in specs if s.name not in _NOT_IN_FORM]
        self._hidden = {s.name: values.get(s.name, s.default) for s in specs
                        if s.name in _NOT_IN_FORM}
        self._secrets: dict[str, Any] = {}
        head = w.HTML(f"<h3 style='margin:0'>Parameters of {html.escape(runbook)}</h3>")
        notes = []
        if any(s.name == "approve" for s in specs):
            notes.append("Nothing is changed before you confirm the plan with the button "
                         "under it (<code>approve</code> is for headless runs).")
        self.note = w.HTML(f"<i>{' '.join(notes)}</i>")
        self.use = w.Button(description="Use these values", button_style="primary",
                            icon="check")
        self.use.add_class("fedcloud-form-continue")
        self.edit = w.Button(description="Edit", icon="pencil")
        self.edit.add_class("fedcloud-form-edit")
        self.archive = w.Button(description="Archive this run", icon="archive",
                                tooltip="record what this kernel ran in the audit archive")
        self.archive.add_class("fedcloud-archive")
        self.status = w.HTML("")
        self.status.add_class("fedcloud-form-status")
        self.use.on_click(lambda _b: self.confirm())
        self.edit.on_click(lambda _b: self.reopen())
        self.archive.on_click(lambda _b: self.archive_run())
        for f in self.fields:
            f.input.observe(lambda _change, f=f: (f.show_problem(), self._summary()),
                            names="value")
        self.widget = w.VBox([head, *(f.box for f in self.fields), self.note,
                              w.HBox([self.use, self.edit, self.archive]), self.status])
        self.widget.add_class("fedcloud-form")
        for f in self.fields:
            f.show_problem()
        if confirmed:
            self._lock(True)
            self.status.value = "These values are in use (press Edit to change them)."
        else:
            self._lock(False)
            self._summary()

    def values(self) -> dict:
        """The values of every field (and of the parameters the form does not show)."""
        out = {f.name: self._secrets.get(f.name, f.value()) if f.input.disabled else f.value()
               for f in self.fields}
        return {**out, **self._hidden}

    def problems(self) -> dict[str, str]:
        """Field name -> what is wrong, for every field with a problem (shown inline)."""
        return {f.name: p for f in self.fields if (p := f.show_problem()) is not None}

    def _summary(self) -> None:
        if self.use.disabled:
            return
        n = sum(1 for f in self.fields if f.problem() is not None)
        self.status.value = (f'<span style="color:#b00">{n} value(s) to fix before going on'
                             f"</span>" if n else "All values are allowed: press "
                             "<b>Use these values</b>.")

    def confirm(self) -> dict | None:
        """Validate every value (as ``fedcloud run`` does) and hand them to ``on_confirm``."""
        problems = self.problems()
        if problems:
            self.status.value = (f'<span style="color:#b00">{len(problems)} value(s) to fix: '
                                 f"{html.escape(', '.join(problems))}</span>")
            return None
        try:
            values = validate_values(self.specs, self.values(), runbook=self.runbook)
        except ParameterError as exc:
            self.status.value = f'<span style="color:#b00">{html.escape(str(exc))}</span>'
            return None
        self._secrets = {f.name: values[f.name] for f in self.fields if f.spec.secret}
        self._on_confirm(values)
        self._lock(True)
        self.status.value = ("<b>Values set.</b> Run the notebook again (<b>Run ▸ Run All "
                             "Cells</b>): the form keeps these values and the runbook goes on.")
        return values

    def reopen(self) -> None:
        """Make the fields editable again; the values in use are dropped."""
        if self._on_edit is not None:
            self._on_edit()
        self._secrets = {}
        self._lock(False)
        self._summary()

    def archive_run(self) -> None:
        if self._on_archive is None:
            return
        try:
            self.status.value = html.escape(self._on_archive())
        except FedcloudError as exc:
            self.status.value = f'<span style="color:#b00">{html.escape(str(exc))}</span>'

    def _lock(self, locked: bool) -> None:
        for f in self.fields:
            f.lock(locked)
        self.use.disabled = locked
        self.use.layout.display = "none" if locked else None
        self.edit.layout.display = None if locked else "none"


# --------------------------------------------------------------------------- the call
def form(namespace: dict) -> None:
    """Show the runbook's parameter form in JupyterLab; do nothing under ``fedcloud run``.

    Call it right after the parameters cell: ``fedcloud_lib.form(globals())``.  Until the
    operator confirms the form, it raises :class:`FormPending` (stopping "Run All"); once
    confirmed, it sets the notebook's parameter variables to the form's values.
    """
    if not session.interactive():
        return
    from IPython.display import display

    specs, runbook = find_declarations(namespace)
    names = tuple(s.name for s in specs)
    current = {s.name: namespace.get(s.name, s.default) for s in specs}
    STATE.namespace, STATE.specs, STATE.runbook = namespace, specs, runbook
    transcript.install()
    archive.install()
    decided = STATE.form

    def on_confirm(values: dict) -> None:
        namespace.update(values)
        new_planning_time()  # a new request: its plans count from now (and stay so)
        STATE.confirm_form(FormDecision(names, current, dict(values), operator_name(),
                                        utcnow().isoformat()))

    def on_archive() -> str:
        entry = archive.archive_run()
        return f"Archived as run {entry.run_id} (fedcloud runs show {entry.run_id})."

    if decided is not None and decided.names == names and current in (decided.base, decided.values):
        namespace.update(decided.values)
        view = ParameterForm(specs, decided.values, runbook=runbook, on_confirm=on_confirm,
                             on_edit=STATE.edit_form, on_archive=on_archive, confirmed=True)
        view._secrets = {s.name: decided.values[s.name] for s in specs if s.secret}
        display(view.widget)
        return
    view = ParameterForm(specs, current, runbook=runbook, on_confirm=on_confirm,
                         on_edit=STATE.edit_form, on_archive=on_archive)
    display(view.widget)
    raise FormPending("fill in the form above and press 'Use these values', then run the "
                      "notebook again (Run ▸ Run All Cells). Nothing below the form has run.")
