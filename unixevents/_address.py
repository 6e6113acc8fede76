"""Where a channel lives: its socket path, its key file, and the private directory.

A channel is named three ways: a plain name (``"jobs"``, placed in the socket
directory as ``jobs.sock`` with ``jobs.key`` beside it), an absolute socket path
(key file ``<path>.key``), or on Linux ``@name`` for the abstract namespace,
which has no file and so no key file: there an explicit authkey is required.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from .errors import UnixEventsError

__all__ = ("Address", "default_socket_dir", "resolve")

_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}\Z")
# sun_path is 108 bytes on Linux and 104 on the BSDs, including the final NUL.
MAX_PATH = 107 if sys.platform.startswith("linux") else 103
KEY_BYTES = 32


@dataclass(frozen=True)
class Address:
    """A resolved channel.

    Attributes:
        channel: the name the user gave.
        path: the socket address for ``bind``/``connect`` (starts with NUL
            for the abstract namespace).
        key_path: the key file beside the socket, or None for abstract names.
    """

    channel: str
    path: str
    key_path: Optional[str]

    @property
    def abstract(self) -> bool:
        return self.path.startswith("\0")

    @property
    def display(self) -> str:
        """The address as users write it (``@name`` for abstract sockets)."""
        return "@" + self.path[1:] if self.abstract else self.path


def default_socket_dir() -> str:
    """``$UNIXEVENTS_DIR``, else ``$XDG_RUNTIME_DIR/unixevents``, else ``/tmp/unixevents-<uid>``."""
    explicit = os.environ.get("UNIXEVENTS_DIR")
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "unixevents")
    return f"/tmp/unixevents-{os.getuid()}"


def resolve(channel: str, socket_dir: Optional[str] = None, *, create: bool = True) -> Address:
    """Turn a channel name into an :class:`Address`, checking it on the way.

    Raises:
        ValueError: the name is not a valid channel name or the path is too long.
        TypeError: the name is not a str.
        UnixEventsError: the socket directory cannot be made or is not private.
    """
    if not isinstance(channel, str):
        raise TypeError(f"channel must be a str, not {type(channel).__name__}")
    if channel.startswith("@"):
        if not sys.platform.startswith("linux"):
            raise ValueError(
                f"channel {channel!r}: the abstract namespace (@name) exists only on Linux;"
                " use a plain name or an absolute path"
            )
        name = channel[1:]
        if not _NAME.match(name):
            raise ValueError(
                f"channel {channel!r}: after '@' use 1 to 100 letters, digits, '.', '_' or '-'"
            )
        return Address(channel, "\0" + name, None)
    if channel.startswith("/"):
        path = os.path.normpath(channel)
        _check_length(channel, path)
        if create:
            _ensure_dir(os.path.dirname(path) or "/", private=False)
        return Address(channel, path, path + ".key")
    if not _NAME.match(channel):
        raise ValueError(
            f"channel {channel!r} is not a valid name: use 1 to 100 letters, digits,"
            " '.', '_' or '-', or an absolute socket path"
        )
    explicit_dir = socket_dir is not None
    directory = os.path.abspath(socket_dir if socket_dir is not None else default_socket_dir())
    path = os.path.join(directory, channel + ".sock")
    _check_length(channel, path)
    if create:
        _ensure_dir(directory, private=not explicit_dir)
    return Address(channel, path, os.path.join(directory, channel + ".key"))


def _check_length(channel: str, path: str) -> None:
    if len(os.fsencode(path)) > MAX_PATH:
        raise ValueError(
            f"channel {channel!r}: socket path {path!r} is {len(os.fsencode(path))} bytes,"
            f" longer than this platform's AF_UNIX limit of {MAX_PATH}; use a shorter name"
            " or a shorter socket_dir"
        )


def _ensure_dir(directory: str, *, private: bool) -> None:
    """Create ``directory`` (mode 0700) if missing; if ``private``, insist it is ours alone."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
    except OSError as exc:
        raise UnixEventsError(
            f"cannot use socket directory {directory!r}: {exc.strerror or exc};"
            " pass socket_dir= (or set UNIXEVENTS_DIR) to a writable directory"
        ) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise UnixEventsError(f"socket directory {directory!r} is not a directory")
    if private:
        if st.st_uid != os.getuid():
            raise UnixEventsError(
                f"socket directory {directory!r} belongs to uid {st.st_uid}, not to you"
                f" (uid {os.getuid()}); remove it or set UNIXEVENTS_DIR to a directory of yours"
            )
        if st.st_mode & 0o077:
            raise UnixEventsError(
                f"socket directory {directory!r} is open to other users"
                f" (mode {stat.S_IMODE(st.st_mode):o}); run 'chmod 700 {directory}'"
            )


def write_key_file(path: str, key: Optional[bytes] = None) -> Tuple[bytes, Tuple[int, int]]:
    """Write ``key`` (default: 32 fresh random bytes) to ``path`` (mode 0600) atomically.

    Returns the key and the file's ``(st_dev, st_ino)``, so that the owner can
    later remove the file only if it is still the one it wrote.
    """
    if key is None:
        key = secrets.token_bytes(KEY_BYTES)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=directory)  # mkstemp uses mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        st = os.stat(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return key, (st.st_dev, st.st_ino)


def read_key_file(path: str) -> bytes:
    """Read a key file; the caller turns OSError into its own retry or message."""
    with open(path, "rb") as fh:
        key = fh.read()
    if not key:
        raise OSError(f"key file {path!r} is empty")
    return key


def coerce_authkey(authkey: Union[bytes, str, None]) -> Optional[bytes]:
    """Check a user-given authkey: bytes or str, never empty."""
    if authkey is None:
        return None
    if isinstance(authkey, str):
        authkey = authkey.encode("utf-8")
    if not isinstance(authkey, (bytes, bytearray)):
        raise TypeError(f"authkey must be bytes or str, not {type(authkey).__name__}")
    if not authkey:
        raise ValueError("authkey must not be empty (an empty key makes the handshake hang)")
    return bytes(authkey)


def is_same(
    path: str, identity: Optional[Tuple[int, int]], content: Optional[bytes] = None
) -> bool:
    """True if ``path`` is still the file with ``identity`` (and ``content``, if given)."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) != identity:
            return False
        if content is not None:
            with open(path, "rb") as fh:
                return fh.read(len(content) + 1) == content
    except OSError:
        return False
    return True


def unlink_if_same(
    path: Optional[str], identity: Optional[Tuple[int, int]], content: Optional[bytes] = None
) -> None:
    """Remove ``path`` only if it is still the file we made.

    ``identity`` is its ``(st_dev, st_ino)``; inode numbers are reused at
    once, so where we know the ``content`` (a key file) it must match too.
    """
    if path is None or identity is None:
        return
    if is_same(path, identity, content):
        try:
            os.unlink(path)
        except OSError:
            pass
