"""mephisto_quals/providers"""
