"""mephisto_quals/devtools"""
