"""Every error the library raises on purpose, under one base class.

Each class is named for what the user can do about it; each message the
library builds says what happened and what to do next.
"""

from __future__ import annotations

from typing import Optional

__all__ = (
    "AuthenticationFailed",
    "ChannelInUseError",
    "MessageTooLarge",
    "NoListener",
    "NotConnectedError",
    "QueueFull",
    "RemoteError",
    "SerializationError",
    "UnixEventsError",
    "WorkerDied",
)


class UnixEventsError(Exception):
    """Base class of every error raised by unixevents."""


class ChannelInUseError(UnixEventsError):
    """A live server already listens on this channel."""


class SerializationError(UnixEventsError, TypeError):
    """The payload cannot be encoded by the channel's serializer; nothing was sent."""


class MessageTooLarge(UnixEventsError):
    """The encoded message is larger than the channel's ``max_message_size``."""


class QueueFull(UnixEventsError):
    """``max_pending`` messages are already waiting to be written."""


class NotConnectedError(UnixEventsError):
    """There is no peer to write to, or the connection was lost or closed."""


class AuthenticationFailed(UnixEventsError):
    """The peer refused our key, or presented a key we do not accept."""


class RemoteError(UnixEventsError):
    """The remote listener (or worker target) raised.

    Attributes:
        remote_type: the name of the remote exception's type.
        remote_traceback: the remote traceback as text.
    """

    def __init__(self, message: str, remote_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class NoListener(UnixEventsError):
    """The peer has no listener for the requested event."""


class WorkerDied(UnixEventsError):
    """A worker process ended without returning a result.

    Attributes:
        exitcode: as in ``multiprocessing``: ``-N`` after signal N.
    """

    def __init__(self, message: str, exitcode: Optional[int] = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


for _cls in (
    UnixEventsError,
    ChannelInUseError,
    SerializationError,
    MessageTooLarge,
    QueueFull,
    NotConnectedError,
    AuthenticationFailed,
    RemoteError,
    NoListener,
    WorkerDied,
):
    _cls.__module__ = "unixevents"
del _cls
