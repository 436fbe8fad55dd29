"""Parameter values of a run: merged from files and overrides, validated before anything starts.

``-f`` files are merged in order, then typed values, then ``-p NAME VALUE`` overrides;
:func:`validate` checks the result against the runbook's declarations (every problem at
once, each naming the parameter, the value and what is allowed).  :func:`check_cloud`
refuses an unknown clouds.yaml entry.  No kernel and no cloud call is involved.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ..params import load_value_files, parse_override, validate_values
from ..runbooks import Runbook, get_runbook

__all__ = ["validate", "merge_values", "check_cloud"]


def validate(runbook: str | Runbook, values: Mapping[str, Any]) -> dict:
    """Validated, type-coerced parameters of a runbook (defaults filled in).

    Raises ParameterError (every problem listed) before anything is started.
    """
    rb = runbook if isinstance(runbook, Runbook) else get_runbook(runbook)
    return validate_values(rb.parameters, dict(values), runbook=rb.name)


def merge_values(runbook: Runbook, files: list[str | Path] = (),
                 overrides: list[tuple[str, str]] = ()) -> dict:
    """Values from ``-f`` files (in order), then ``-p NAME VALUE`` overrides (text)."""
    values = load_value_files(list(files), runbook.parameters)
    specs = {s.name: s for s in runbook.parameters}
    for name, raw in overrides:
        values[name] = parse_override(specs.get(name), raw)
    return values


def check_cloud(name: str) -> None:
    """Refuse an unknown clouds.yaml entry before anything starts."""
    import openstack.config
    from openstack import exceptions as osexc

    try:
        openstack.config.OpenStackConfig().get_one(cloud=name)
    except (osexc.ConfigException, KeyError) as e:
        try:
            names = ", ".join(sorted(openstack.config.OpenStackConfig().get_cloud_names()))
        except Exception:  # noqa: BLE001 - best effort for the message only
            names = "(none found)"
        raise ParameterError(f"cloud: {name!r} is not a cloud in clouds.yaml; known: {names}",
                             cloud=name) from e
