"""``python -m mephisto_quals.cli``: the same command line as ``mephisto-quals``."""

from mephisto_quals.cli.main import main

if __name__ == "__main__":
    main()
