"""The descriptor of an AsyncBinaryFile as a plain io object: ``raw``,
aiofiles' ``_file``, and ``detach()``, as io's buffered files have them.

A mixin of ``aioposix._file.binary.AsyncBinaryFile``, which owns the
attributes it reads.
"""

from __future__ import annotations

import io
import os

from aioposix._file.base import pwrite_all


class RawAccess:
    """``raw``, ``_file`` and ``detach`` of a binary file."""

    _rawio: io.FileIO | None
    _detached: bool
    _closed: bool
    _closefd: bool
    _seekable: bool
    _append: bool
    _fd: int
    _pos: int
    _mode: str
    _name: object
    _wbuf: bytearray

    def _check_open(self) -> None:
        raise NotImplementedError

    def _drop_read_ahead(self) -> None:
        raise NotImplementedError

    @property
    def raw(self) -> io.FileIO:
        """The descriptor as an unbuffered ``io.FileIO`` (io's buffered files
        call it ``raw``), made on first use and closed with this file.

        Its position is the descriptor's, which this file does not move (it
        reads and writes at its own position): ``detach()`` hands it over at
        this file's position; before that, use one or the other.
        """
        if self._rawio is not None and not self._detached:
            return self._rawio  # closed with this file, as io's raw is
        self._check_open()
        if self._rawio is None:
            self._rawio = io.FileIO(self._fd, self._mode, closefd=self._closefd)
            self._rawio.name = self._name
        return self._rawio

    @property
    def _file(self) -> io.FileIO:
        """aiofiles' name for the synchronous file an async one wraps: ``raw``."""
        return self.raw

    def detach(self) -> io.FileIO:
        """Hand the descriptor over as ``raw``, at this file's position.

        Buffered writes are written out first (synchronously: at most one
        chunk); this file is then unusable (ValueError), as io's detach
        leaves a buffered file.
        """
        raw = self.raw
        if self._wbuf:
            self._write_out_now()
        if self._seekable:
            os.lseek(self._fd, self._pos, os.SEEK_SET)
        self._drop_read_ahead()
        self._detached = self._closed = True
        return raw

    def _write_out_now(self) -> None:
        done = pwrite_all(self._fd, bytes(self._wbuf), self._pos)
        self._wbuf.clear()
        self._pos = os.fstat(self._fd).st_size if self._append else self._pos + done
