"""The socket and key files a server makes: created, kept in place, removed if still ours."""

from __future__ import annotations

import logging
import os
import socket
from typing import Callable, Optional, Tuple

from . import _address, _sockets
from .errors import UnixEventsError

__all__ = ("ServerFiles",)

Identity = Optional[Tuple[int, int]]


class ServerFiles:
    """One server's socket file and (unless an authkey was given) key file.

    Args:
        address: where the server listens.
        log: the instance's logger.
    """

    def __init__(self, address: _address.Address, log: logging.Logger) -> None:
        self.address = address
        self._log = log
        self._socket: Identity = None
        self._key: Optional[bytes] = None
        self._key_id: Identity = None
        self._replaced_warned = False

    def create(
        self, authkey: Optional[bytes], want_key_file: bool
    ) -> Tuple[socket.socket, Optional[bytes]]:
        """Bind the socket, then write the key file if ``want_key_file`` and no ``authkey``.

        Returns the listening socket and the key the server checks (None: no
        handshake). On failure nothing created is left behind.

        Raises:
            ChannelInUseError, UnixEventsError: as ``_sockets.bind``, or the key
                file cannot be written (e.g. the disk is full).
        """
        sock, self._socket = _sockets.bind(self.address)
        key = authkey
        try:
            if want_key_file and key is None:
                key = self._write_key(None)
        except BaseException:
            sock.close()
            self.remove()
            raise
        return sock, key

    def _write_key(self, key: Optional[bytes]) -> bytes:
        path = self.address.key_path
        assert path is not None
        try:
            key, self._key_id = _address.write_key_file(path, key)
        except OSError as exc:
            raise UnixEventsError(
                f"cannot write the key file {path!r}: {exc.strerror or exc}; free some space"
                " or make the directory writable, or pass socket_dir= (or authkey= on both"
                " sides)"
            ) from exc
        self._key = key
        return key

    def check(self, replace_listener: Callable[[socket.socket], None]) -> None:
        """Put back what was deleted (I/O thread, each liveness tick).

        A deleted socket file is bound again and handed to ``replace_listener``
        (clients keep finding us), and a deleted or altered key file is
        re-written with the same key. A socket file that another process
        replaced is left to it, with one ERROR.
        """
        path = self.address.path
        if self._socket is None or self.address.abstract:
            return
        if _address.is_same(path, self._socket):
            self._replaced_warned = False
        elif os.path.lexists(path):
            if not self._replaced_warned:
                self._replaced_warned = True
                self._log.error(
                    "another process replaced the socket file %s; existing clients stay"
                    " connected, new ones reach the other process. Close one of the servers.",
                    path,
                )
            return
        else:
            try:
                sock, self._socket = _sockets.bind(self.address)
            except UnixEventsError as exc:
                self._log.error(
                    "the socket file %s was deleted and cannot be re-created: %s", path, exc
                )
                return
            replace_listener(sock)
            self._log.warning("the socket file %s was deleted; re-created it", path)
        key_path = self.address.key_path
        if (
            self._key is not None
            and key_path is not None
            and not _address.is_same(key_path, self._key_id, self._key)
        ):
            try:
                self._write_key(self._key)
            except UnixEventsError as exc:
                self._log.error("%s", exc)
            else:
                self._log.warning("the key file %s was deleted or changed; re-wrote it", key_path)

    def remove(self) -> None:
        """Remove the files, each only if it is still the one we made."""
        _address.unlink_if_same(self.address.path, self._socket)
        _address.unlink_if_same(self.address.key_path, self._key_id, self._key)
        self._socket = self._key_id = None
