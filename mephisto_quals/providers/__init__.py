"""Crowd-provider APIs: what mephisto-quals sends to MTurk and Prolific, beside Mephisto's own providers.
"""
