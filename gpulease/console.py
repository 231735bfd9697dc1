"""The CLI's two consoles: results on stdout, errors and progress on stderr.

Soft wrap keeps long messages (paths, field names) on one line, so they can be grepped.
"""

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
