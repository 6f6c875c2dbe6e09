"""pytest plugin (the ``pytest11`` entry point ``tunebridge``): readable contract failures.

pytest rewrites ``assert`` statements only in test modules and in modules registered for rewriting before
they are imported. The contract suite lives in an installed package, so without this its failures would
print a bare ``AssertionError``; registered here, they show the compared values. Nothing else happens here.
"""

import pytest

pytest.register_assert_rewrite("tunebridge.testing.contract", "tunebridge.testing.reference")
