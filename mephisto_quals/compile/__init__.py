"""mephisto_quals/compile"""
