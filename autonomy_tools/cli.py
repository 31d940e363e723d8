"""`autonomy-stack` command-line tool (subcommands are added by autonomy_tools.commands)."""
import sys

from autonomy_tools.commands import main as commands_main


def main(argv=None) -> int:
    return commands_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
