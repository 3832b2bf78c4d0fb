"""`python -m explorer`: the same as the `attention-explorer` command."""

from explorer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
