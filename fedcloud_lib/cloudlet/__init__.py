"""Install, verify and operate a cloudlet (runbooks cloudlet-install / cloudlet-verify)."""
