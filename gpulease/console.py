"""The CLI's two consoles: results on stdout, errors and progress on stderr.

Soft wrap keeps long messages (paths, field names) on one line, so they can be grepped; when
output goes to a pipe or file, tables get room instead of the 80-column default.
"""

import sys

from rich.console import Console


def _width(stream) -> int | None:
    return None if stream.isatty() else 200


out = Console(soft_wrap=True, width=_width(sys.stdout))
err = Console(stderr=True, soft_wrap=True, width=_width(sys.stderr))
