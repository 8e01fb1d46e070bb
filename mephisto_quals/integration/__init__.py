"""mephisto_quals/integration"""
