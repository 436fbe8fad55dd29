"""Nagios checks: ``fedcloud check services|hypervisors|capacity|expiry|archive``.

:mod:`.nagios` (thresholds, the plugin API through ``nagiosplugin``, readable failures)
and one module per check; :mod:`.cli` is the lazy ``fedcloud check`` plugin.
"""
