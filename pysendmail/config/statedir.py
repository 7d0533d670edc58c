"""Making the directories of the embedded default ready on a fresh machine.

When pysendmail runs without /etc/mail/sendmail.cf and not as root, the translated
`Config` puts its queue, host status, mailboxes and aliases under `Config.state_dir`
(`$XDG_STATE_HOME/pysendmail`). `prepare_state_dir(config)` creates those directories
(mode 0700) and an empty aliases file, so a first `pysendmail -bD` or `sendmail -t`
works on a fresh account. It does nothing for a configuration with no state_dir; it
never changes a file that exists.

As root the embedded default uses sendmail's paths; a fresh machine may lack
/var/spool/mqueue, which a sendmail package would have made, so the queue and host
status directories are made there too (mode 0700). A configuration read from a
sendmail.cf gets nothing made: sendmail reports a missing queue directory, and so do we.
"""

from __future__ import annotations

import os

from pysendmail.config.model import Config

_DIRECTORY_OPTIONS = ("QueueDirectory", "HostStatusDirectory")


def prepare_state_dir(config: Config) -> list[str]:
    """Create what the embedded default needs; returns the paths it created."""
    if config.cf_path is not None:
        return []
    created: list[str] = []
    wanted = [str(config.state_dir), config.mailbox_dir] if config.state_dir else []
    wanted += [str(config.option(name)) for name in _DIRECTORY_OPTIONS if config.option(name)]
    for directory in wanted:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            created.append(directory)
    for alias_file in config.option("AliasFile") or ():  # type: ignore[union-attr]
        path = str(alias_file).split(":", 1)[-1] if ":" in str(alias_file) else str(alias_file)
        in_state_dir = config.state_dir and path.startswith(str(config.state_dir))
        if in_state_dir and not os.path.exists(path):
            with open(path, "x", encoding="utf-8") as out:
                out.write("# aliases of the embedded default configuration: `name: target, ...`\n")
            created.append(path)
    return created
