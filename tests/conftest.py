"""Shared test configuration: hypothesis profiles sized for a 2-core CI machine."""
import os

from hypothesis import HealthCheck, settings

# "ci" keeps the whole suite under a few minutes on 2 cores; "thorough" is for local soak runs:
#   HYPOTHESIS_PROFILE=thorough make test
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
