"""Root conftest: every test directory gets the real-infrastructure fixtures.

See ``tuanlian.shared.testing`` for what they are and how the servers are chosen.
"""

pytest_plugins = ["tuanlian.shared.testing"]
