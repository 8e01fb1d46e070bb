"""From a task's ``quals`` config to plain requirement values: pure code, no database, no network.

The plan it produces is what the integration layer puts on Mephisto's shared state and what
the providers turn into their own payloads.
"""
