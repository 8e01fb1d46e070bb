"""Hydra configs shipped with mephisto-quals (installed as ``mephisto_quals.conf``)."""
