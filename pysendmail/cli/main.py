"""The `pysendmail` program: picks a personality by argv[0], as sendmail does.

`sendmail`/`pysendmail` -> the sendmail command line; `newaliases` = -bi; `mailq` = -bp;
`hoststat` = -bh; `purgestat` = -bH; `makemap` and `praliases` are their own programs.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Run with a full argv (argv[0] included); returns the exit status."""
    argv = list(sys.argv if argv is None else argv)
    name = os.path.basename(argv[0]) if argv else "sendmail"
    if name == "makemap":
        from pysendmail.cli import makemap

        return makemap.main(argv)
    if name == "praliases":
        from pysendmail.cli import praliases

        return praliases.main(argv)
    from pysendmail.cli import sendmail

    return sendmail.main(argv)


if __name__ == "__main__":
    sys.exit(main())
