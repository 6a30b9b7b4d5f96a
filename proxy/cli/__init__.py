"""The ``regogate`` command line, one module per command."""
