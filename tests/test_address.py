"""Channel names, socket paths, the private directory, key files (spec 1.2)."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from unixevents import UnixEvents, UnixEventsError
from unixevents._address import (
    KEY_BYTES,
    MAX_PATH,
    coerce_authkey,
    default_socket_dir,
    resolve,
)


@pytest.mark.parametrize("name", ["a", "Channel1", "x.y_z-0", "a" * 60])
def test_valid_names_live_in_the_socket_dir(name: str, sock_dir: str) -> None:
    address = resolve(name, sock_dir)
    assert address.path == os.path.join(sock_dir, name + ".sock")
    assert address.key_path == os.path.join(sock_dir, name + ".key")


@pytest.mark.parametrize("name", ["", "a b", "a/b", "é", "a" * 101, "x\0y", "@"])
def test_bad_names_are_a_value_error_that_says_why(name: str, sock_dir: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        resolve(name, sock_dir)


def test_non_str_names_are_a_type_error(sock_dir: str) -> None:
    with pytest.raises(TypeError):
        resolve(5, sock_dir)  # type: ignore[arg-type]


def test_a_path_past_the_platform_limit_is_refused(sock_dir: str) -> None:
    long_dir = os.path.join(sock_dir, "d" * (MAX_PATH - len(sock_dir)))
    with pytest.raises(ValueError, match="AF_UNIX limit"):
        resolve("chan", long_dir)
    with pytest.raises(ValueError, match="AF_UNIX limit"):
        UnixEvents("server", "/" + "p" * (MAX_PATH + 1))


def test_absolute_paths_keep_their_key_beside_them(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "my.sock")
    address = resolve(path)
    assert (address.path, address.key_path) == (path, path + ".key")
    with UnixEvents("server", path) as server:
        assert server.address == path
        assert stat.S_IMODE(os.stat(path + ".key").st_mode) == 0o600
        with UnixEvents("client", path) as client:
            assert client.wait_connected(10)
    assert os.listdir(sock_dir) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_abstract_names_need_an_explicit_key(channel: str) -> None:
    with pytest.raises(ValueError, match="authkey"):
        UnixEvents("server", "@" + channel)
    with UnixEvents("server", "@" + channel, authkey="secret") as server:
        assert server.address == "@" + channel
        with UnixEvents("client", "@" + channel, authkey=b"secret") as client:
            assert client.wait_connected(10)


def test_default_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, sock_dir: str
) -> None:
    monkeypatch.setenv("UNIXEVENTS_DIR", sock_dir)
    assert default_socket_dir() == sock_dir
    monkeypatch.delenv("UNIXEVENTS_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", sock_dir)
    assert default_socket_dir() == os.path.join(sock_dir, "unixevents")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_socket_dir() == f"/tmp/unixevents-{os.getuid()}"


def test_the_default_dir_is_created_private(monkeypatch: pytest.MonkeyPatch, sock_dir: str) -> None:
    monkeypatch.delenv("UNIXEVENTS_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", sock_dir)
    address = resolve("chan")
    directory = os.path.dirname(address.path)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    os.rmdir(directory)


def test_a_default_dir_open_to_others_is_refused(
    monkeypatch: pytest.MonkeyPatch, sock_dir: str
) -> None:
    monkeypatch.delenv("UNIXEVENTS_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", sock_dir)
    os.mkdir(os.path.join(sock_dir, "unixevents"), 0o700)
    os.chmod(os.path.join(sock_dir, "unixevents"), 0o755)
    try:
        with pytest.raises(UnixEventsError, match="chmod 700"):
            UnixEvents("server", "chan")
    finally:
        os.rmdir(os.path.join(sock_dir, "unixevents"))


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_a_default_dir_owned_by_someone_else_is_refused(
    monkeypatch: pytest.MonkeyPatch, sock_dir: str
) -> None:
    monkeypatch.delenv("UNIXEVENTS_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", sock_dir)
    theirs = os.path.join(sock_dir, "unixevents")
    os.mkdir(theirs, 0o700)
    os.chown(theirs, 65534, 65534)
    try:
        with pytest.raises(UnixEventsError, match="belongs to uid 65534"):
            resolve("chan")
    finally:
        os.rmdir(theirs)


def test_an_unusable_socket_dir_is_a_clear_error(sock_dir: str) -> None:
    blocker = os.path.join(sock_dir, "file")
    with open(blocker, "w"):
        pass
    try:
        with pytest.raises(UnixEventsError, match="socket directory"):
            UnixEvents("server", "chan", socket_dir=os.path.join(blocker, "sub"))
    finally:
        os.unlink(blocker)


def test_socket_and_key_files_are_private(sock_dir: str, channel: str) -> None:
    os.chmod(sock_dir, 0o755)  # socket_dir= is used as given...
    with UnixEvents("server", channel, socket_dir=sock_dir):
        sock = os.stat(os.path.join(sock_dir, channel + ".sock"))
        key = os.stat(os.path.join(sock_dir, channel + ".key"))
        # ...but what we create inside it is still ours alone.
        assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600
        assert stat.S_IMODE(key.st_mode) == 0o600 and key.st_size == KEY_BYTES
    assert os.listdir(sock_dir) == []


def test_a_missing_socket_dir_is_created_0700(sock_dir: str, channel: str) -> None:
    sub = os.path.join(sock_dir, "new")
    with UnixEvents("server", channel, socket_dir=sub):
        assert stat.S_IMODE(os.stat(sub).st_mode) == 0o700
    os.rmdir(sub)


def test_authkeys_are_bytes_or_str_and_never_empty() -> None:
    assert coerce_authkey("k") == b"k"
    assert coerce_authkey(b"k") == b"k"
    assert coerce_authkey(None) is None
    with pytest.raises(ValueError, match="empty"):
        coerce_authkey(b"")
    with pytest.raises(ValueError, match="empty"):
        UnixEvents(authkey="")
    with pytest.raises(TypeError):
        coerce_authkey(5)  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_a_hundred_character_name_is_valid_where_it_fits() -> None:
    assert resolve("@" + "a" * 100).path == "\0" + "a" * 100
    with pytest.raises(ValueError, match="letters"):
        resolve("@" + "a" * 101)
