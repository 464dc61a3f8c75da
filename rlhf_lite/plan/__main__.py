import sys

from ..errors import cli
from .cli import main

sys.exit(cli(main))
