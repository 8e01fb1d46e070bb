"""Runnable development tools: the demo (``./run demo``), the browser pilot and the mock crowd
that drives Mephisto's mock architect for tests and demos.
"""
