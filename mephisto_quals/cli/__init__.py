"""The ``mephisto-quals`` command line.

``main`` is the root group and entry point; ``grants`` (grant, revoke, reset-onboarding,
prune, import), ``queries`` (list, show, export, history), ``eligibility`` (explain,
forecast), ``review``, ``mturk`` (sync, qual-types, requests), ``prolific``
(export-prolific) and ``wut`` hold the commands; ``base`` (command classes, the one error
translation), ``options``, ``output`` and ``database`` (the one database resolver) are shared.
"""
