"""mephisto_quals/admin"""
