"""Test-wide settings.

Property tests run derandomized by default so that CI is reproducible: the same examples every run.
``HYPOTHESIS_PROFILE=explore`` searches afresh (and many more examples) when hunting for bugs; any
failure it finds is pinned with ``@example`` next to the test.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, max_examples=2000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
