"""mephisto_quals/providers/prolific"""
