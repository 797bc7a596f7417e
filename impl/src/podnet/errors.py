"""The root of podnet's error hierarchy.

Every error a user can see derives from `PodnetError`; its message is the
whole story (what failed, on which object, and what to do), so callers print
`str(err)` and never a traceback.
"""


class PodnetError(Exception):
    """An error with a message meant for the user."""
