"""Running a runbook headless: the run lifecycle (:mod:`.engine`), the kernel and
papermill hooks (:mod:`.kernel`), and parameter values (:mod:`.values`)."""
