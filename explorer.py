"""rnnviz explorer from a checkout: ``python explorer.py [--port 8000] [--share] ...``.

The same as ``rnnviz-explorer`` (``rnnviz/app/__main__.py``, where the options are documented),
with this checkout's checkpoints/ and runs/ folders as the defaults wherever it is started from.
"""

from pathlib import Path

from rnnviz.app.__main__ import main as _main
from rnnviz.app.__main__ import make_explorer, training_policy
from rnnviz.app.__main__ import parse_args as _parse_args

__all__ = ["main", "make_explorer", "parse_args", "training_policy"]
HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    return _parse_args(argv, root=HERE)


def main(argv=None):
    _main(argv, root=HERE)


if __name__ == "__main__":
    main()
