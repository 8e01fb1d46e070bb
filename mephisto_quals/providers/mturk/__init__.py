"""mephisto_quals/providers/mturk"""
