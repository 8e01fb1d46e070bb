"""mephisto_quals/store"""
