"""Errors a user can cause. The CLI prints them as one line and exits with status 2."""


class LexilabError(Exception):
    """A problem in the user's input (spec, data, path, checkpoint, cluster) — not a bug.

    The message is one line naming the file and the key or line that is wrong.
    """
