"""nbval on the runbooks: ``pytest --nbval-lax runbooks/`` (part of ``make test``).

Each runbook runs top to bottom with its defaults in a fresh ``fedcloud`` kernel, as an
operator's "Run All" in JupyterLab would, and must stop cleanly where an operator has to
act: at its form (``fedcloud_lib.form(globals())`` raises ``FormPending``) or at its plan
(``StopAfterPlan``).  The form cell carries nbval's comment marker for an expected error,
``# NBVAL_RAISES_EXCEPTION`` — not the ``raises-exception`` tag, which JupyterLab also
reads, and runs past.  JupyterLab stops "Run All" at such a cell; nbval would go on with
the next cells, so this hook skips them, naming the stop.  Any other error fails the cell.
"""
from __future__ import annotations

import pytest

STOPS = {"FormPending": "its parameter form", "StopAfterPlan": "its plan"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.passed:
        return
    for out in getattr(item, "test_outputs", None) or []:
        if out.get("output_type") == "error" and out.get("ename") in STOPS:
            item.parent.fedcloud_stopped_at = (item.name, STOPS[out["ename"]])


def pytest_runtest_setup(item):
    stopped = getattr(item.parent, "fedcloud_stopped_at", None)
    if stopped is not None:
        pytest.skip(f"the runbook stopped at {stopped[1]} ({stopped[0]}), as Run All does")

