"""mephisto_quals/cli"""
