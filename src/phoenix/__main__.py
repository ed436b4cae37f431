"""`python -m phoenix` is the `phoenix` command."""

from phoenix.cli.app import main

main()
