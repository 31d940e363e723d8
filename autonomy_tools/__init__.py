"""Tools (layer 4): the `autonomy-stack` command-line tool and its subcommands, the standalone
runner, the demo, graph drawing, parameter docs, the in-process evaluation harnesses and the
stack-monitor node."""
