"""capacity-report: hosts, quotas and usage, instances by class, owner and age, servers
created and deleted per week — tables, plots and CSV files.

:mod:`.facts` (read the inventory) → :mod:`.capacity` (the tables and the flags) →
:mod:`.plots` (matplotlib figures) → :mod:`.output` (CSV and PNG next to the run).
Read only: the report changes nothing.
"""
from . import capacity, facts, output, plots  # noqa: E402 - one module per step, for the runbook

__all__ = ['capacity', 'facts', 'output', 'plots']
