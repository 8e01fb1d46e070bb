"""What review scripts and the CLI call: bulk grants and revokes, queries, explain/forecast, CSV I/O, review rules.

Everything here reads and writes the database through :mod:`mephisto_quals.store` only.
"""
