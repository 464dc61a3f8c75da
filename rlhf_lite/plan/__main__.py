import sys

from ..errors import cli
from . import main

sys.exit(cli(main))
