"""Prolific: our API client, local lists kept as participant groups (sync, pull, direct grants) and
the list exports.
"""
