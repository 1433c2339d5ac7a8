"""`python -m dexec_tools.loadgen`: the same as the `dexec-load` console script."""

from dexec_tools.loadgen.cli import main

main()
