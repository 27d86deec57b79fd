"""The test suite.

Set before any of the app's modules is imported (this runs before conftest.py), and inherited by every command a
test runs: passwords hashed with argon2-cffi's CHEAPEST profile. The suite creates thousands of accounts and
signs each in; at the real parameters (~0.1 s of CPU each) that was minutes of every run, and nothing a test
checks depends on the cost. tests/test_secret_rotation.py checks the production default.
"""

import os

os.environ.setdefault("INBOX_ARGON2_PROFILE", "CHEAPEST")
