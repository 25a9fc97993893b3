"""The one exception type for mistakes a user can cause."""


class SynthTextError(Exception):
    """A user-facing error: the message says what was wrong and what to do about it."""


class ClipRejected(SynthTextError):
    """A clip that cannot be used for training; ``reason`` is a short machine-readable key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # pickled whole: a worker process raises it, the flow catches it
        return type(self), (self.reason, self.detail)
