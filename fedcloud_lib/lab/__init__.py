"""The interactive half: runbooks in JupyterLab.

* :mod:`.session` — is this an interactive kernel, and what the operator decided in it
  (form values, confirmed plans, the open interactive run);
* :mod:`.form` — the parameter form a runbook shows right after its parameters cell
  (``fedcloud_lib.form(globals())``), validated by :func:`fedcloud_lib.params.validate_values`;
* :mod:`.gate` — the confirm button under a plan (used by
  :func:`fedcloud_lib.plan.require_approval` outside the engine);
* :mod:`.transcript` — what this kernel executed and what it showed, captured kernel-side;
* :mod:`.archive` — interactive runs into the audit archive (status ``interactive``);
* :mod:`.server` — the JupyterLab server ``fedcloud lab`` starts; :mod:`.cli` — the command.

Under the engine (``fedcloud run``: ``FEDCLOUD_RUN_ID`` is set) all of it stays silent.
"""
