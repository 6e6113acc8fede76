"""unixevents: event-based IPC between processes on one machine, over Unix domain sockets.

>>> server = UnixEvents("server", "jobs")              # doctest: +SKIP
>>> client = UnixEvents("client", "jobs")              # doctest: +SKIP
>>> server.receive("hello", print)                     # doctest: +SKIP
>>> client.send("hello", {"from": "client"})           # doctest: +SKIP
"""

from ._channel import Linker as Linker
from ._channel import UnixEvents as UnixEvents
from ._liveness import PeerInfo as PeerInfo
from ._requests import RequestFuture as RequestFuture
from .errors import AuthenticationFailed as AuthenticationFailed
from .errors import ChannelInUseError as ChannelInUseError
from .errors import MessageTooLarge as MessageTooLarge
from .errors import NoListener as NoListener
from .errors import NotConnectedError as NotConnectedError
from .errors import QueueFull as QueueFull
from .errors import RemoteError as RemoteError
from .errors import SerializationError as SerializationError
from .errors import UnixEventsError as UnixEventsError
from .errors import WorkerDied as WorkerDied

__version__ = "0.1.0"

__all__ = (
    "AuthenticationFailed",
    "ChannelInUseError",
    "Linker",
    "MessageTooLarge",
    "NoListener",
    "NotConnectedError",
    "PeerInfo",
    "QueueFull",
    "RemoteError",
    "RequestFuture",
    "SerializationError",
    "UnixEvents",
    "UnixEventsError",
    "WorkerDied",
)
