"""MTurk: the client (sandbox unless live), list sync, direct grants, qualification types and requests.

MTurk closed on 2026-09-30; this stays working for those who still have its data.
"""
