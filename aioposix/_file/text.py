"""AsyncTextFile: io.TextIOWrapper over an AsyncBinaryFile.

It decodes with an incremental decoder and translates newlines as
``io.TextIOWrapper`` does (its tell/seek cookies included, after _pyio);
the decoding is done on the loop thread, in the caller's task.  Every
transfer is the buffer's (``f.buffer``): AIO jobs.
"""

from __future__ import annotations

import codecs
import io
import locale
import os
from collections.abc import Sequence
from typing import Any

from aioposix._file.base import AsyncFile, detached_error
from aioposix._file.binary import AsyncBinaryFile

NEWLINES = (None, "", "\n", "\r", "\r\n")


def _pack_cookie(position: int, dec_flags: int = 0, bytes_to_feed: int = 0,
                 need_eof: bool = False, chars_to_skip: int = 0) -> int:
    """io.TextIOWrapper's tell() cookie: seek to position, set the decoder
    flags, feed bytes_to_feed bytes (with EOF), skip chars_to_skip chars."""
    return (position | (dec_flags << 64) | (bytes_to_feed << 128) | (chars_to_skip << 192)
            | int(need_eof) << 256)


def _unpack_cookie(cookie: int) -> tuple[int, int, int, bool, int]:
    rest, position = divmod(cookie, 1 << 64)
    rest, dec_flags = divmod(rest, 1 << 64)
    rest, bytes_to_feed = divmod(rest, 1 << 64)
    need_eof, chars_to_skip = divmod(rest, 1 << 64)
    return position, dec_flags, bytes_to_feed, bool(need_eof), chars_to_skip


def _line_end(line: str, start: int, translate: bool, universal: bool, readnl: str) -> int:
    """Where the first line of ``line`` ends (searching from ``start``), or -1."""
    if translate:
        pos = line.find("\n", start)
        return pos + 1 if pos >= 0 else -1
    if not universal:
        pos = line.find(readnl, start)
        return pos + len(readnl) if pos >= 0 else -1
    # universal, untranslated: \r, \n or \r\n (the decoder never splits \r\n)
    nl, cr = line.find("\n", start), line.find("\r", start)
    if cr < 0:
        return nl + 1 if nl >= 0 else -1
    if nl < 0 or cr < nl - 1:
        return cr + 1
    return nl + 1


class AsyncTextFile(AsyncFile[str]):
    """A text file: ``buffer`` (an AsyncBinaryFile) plus decoding and
    newline translation, as io.TextIOWrapper does them."""

    def __init__(self, buffer: AsyncBinaryFile, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None, *,
                 line_buffering: bool = False, mode: str = "r") -> None:
        if newline not in NEWLINES:
            raise ValueError(f"illegal newline value: {newline!r}")
        self._buffer = buffer
        self._detached = False
        self.encoding = self._pick_encoding(encoding)
        self.errors = errors if errors is not None else "strict"
        self.line_buffering = line_buffering
        self._mode = mode
        self._translate = newline is None  # \r and \r\n read as \n
        self._universal = not newline  # any of \r, \n, \r\n ends a line
        self._readnl = newline or "\n"
        self._writenl = os.linesep if newline is None else newline  # "" means as is
        self._decoder = self._make_decoder() if buffer.readable() else None
        self._encoder: codecs.IncrementalEncoder | None = None
        self._decoded = ""
        self._used = 0  # chars of _decoded already returned
        self._snapshot: tuple[int, bytes] | None = None  # (dec_flags, bytes fed since)
        self._b2cratio = 0.0
        if buffer._writable and buffer._pos:  # no BOM in the middle of a file
            self._get_encoder().setstate(0)

    @staticmethod
    def _pick_encoding(encoding: str | None) -> str:
        if encoding is None or encoding == "locale":
            encoding = locale.getpreferredencoding(False)
        codecs.lookup(encoding)  # LookupError now, not on the first read
        return encoding

    def _make_decoder(self) -> codecs.IncrementalDecoder:
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        if self._universal:
            return io.IncrementalNewlineDecoder(decoder, self._translate)  # type: ignore[return-value]
        return decoder

    def _get_encoder(self) -> codecs.IncrementalEncoder:
        if self._encoder is None:
            self._encoder = codecs.getincrementalencoder(self.encoding)(self.errors)
        return self._encoder

    # -- properties -------------------------------------------------------------------

    @property
    def buffer(self) -> AsyncBinaryFile:
        """The binary file underneath (raises ValueError after ``detach()``)."""
        if self._detached:
            raise detached_error()
        return self._buffer

    @property
    def _file(self) -> io.FileIO:
        """aiofiles' name for the synchronous file an async one wraps: the
        buffer's ``raw``."""
        return self.buffer.raw

    @property
    def name(self) -> Any:
        return self.buffer.name

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def closed(self) -> bool:
        return self.buffer.closed

    @property
    def newlines(self) -> str | tuple[str, ...] | None:
        """The line endings seen so far (universal newline reading only)."""
        return getattr(self._decoder, "newlines", None)

    def fileno(self) -> int:
        return self.buffer.fileno()

    async def readable(self) -> bool:
        """Whether the file was opened for reading (a coroutine, as in aiofiles' text files)."""
        return self.buffer.readable()

    def detach(self) -> AsyncBinaryFile:
        """Hand over the buffer, at the text position; this file is then
        unusable (ValueError), as io.TextIOWrapper's detach leaves it."""
        buffer = self.buffer
        if self._snapshot is not None:  # reading: nothing is buffered to write
            start, _, to_feed, _, to_skip = _unpack_cookie(self._cookie(buffer._pos))
            if to_feed or to_skip:
                raise io.UnsupportedOperation("the position is inside a multi-byte character")
            buffer._move_to(start)
        self._forget_decoded()
        self._detached = True
        return buffer

    async def writable(self) -> bool:
        return await self.buffer.writable()

    async def seekable(self) -> bool:
        return await self.buffer.seekable()

    def _decoder_or_fail(self) -> codecs.IncrementalDecoder:
        self.buffer._check_readable()
        assert self._decoder is not None
        return self._decoder

    # -- decoded characters --------------------------------------------------------------

    def _set_decoded(self, chars: str) -> None:
        self._decoded, self._used = chars, 0

    def _get_decoded(self, n: int | None = None) -> str:
        start = self._used
        chars = self._decoded[start:] if n is None else self._decoded[start:start + n]
        self._used += len(chars)
        return chars

    async def _read_chunk(self) -> bool:
        """Decode one more chunk (snapshotting for tell); False at EOF."""
        decoder = self._decoder_or_fail()
        dec_buffer, dec_flags = decoder.getstate()
        chunk = await self.buffer.read1(self.buffer._chunk)
        chars = decoder.decode(chunk, not chunk)
        self._set_decoded(chars)
        self._b2cratio = len(chunk) / len(chars) if chars else 0.0
        self._snapshot = (dec_flags, dec_buffer + chunk)
        return bool(chunk)

    def _forget_decoded(self) -> None:
        self._set_decoded("")
        self._snapshot = None

    # -- reading ------------------------------------------------------------------------

    async def read(self, n: int | None = -1) -> str:
        decoder = self._decoder_or_fail()
        if n is None or n < 0:
            chars = self._get_decoded() + decoder.decode(await self.buffer.read(), final=True)
            self._forget_decoded()
            return chars
        result = self._get_decoded(n)
        while len(result) < n and await self._read_chunk():
            result += self._get_decoded(n - len(result))
        return result

    async def readline(self, size: int | None = -1) -> str:
        self._decoder_or_fail()
        limit = -1 if size is None else size
        line, start = self._get_decoded(), 0
        while True:
            end = _line_end(line, start, self._translate, self._universal, self._readnl)
            if end >= 0:
                break
            if 0 <= limit <= len(line):
                end = limit
                break
            start = max(len(line) - 1, 0)  # a "\r\n" may straddle the chunks
            more = await self._more_chars()
            if not more:
                self._forget_decoded()
                return line
            line += more
        if 0 <= limit < end:
            end = limit
        self._used -= len(line) - end  # give back what follows the line
        return line[:end]

    async def _more_chars(self) -> str:
        while await self._read_chunk():
            if self._decoded:
                break
        return self._get_decoded()

    # -- writing -------------------------------------------------------------------------

    async def write(self, data: str) -> int:
        if not isinstance(data, str):
            raise TypeError(f"write() argument must be str, not {type(data).__name__}")
        self.buffer._check_writable()
        await self._sync_position()
        length = len(data)
        if self._writenl not in ("", "\n") and "\n" in data:
            data = data.replace("\n", self._writenl)
        await self.buffer.write(self._get_encoder().encode(data))
        if self.line_buffering and ("\n" in data or "\r" in data):
            await self.buffer.flush()
        return length

    async def _sync_position(self) -> None:
        """Put the buffer's position at the text position and drop the
        read-ahead: a write goes where the reader stopped, not after the chunk
        read ahead (io.TextIOWrapper would write after it)."""
        if self._snapshot is None:
            return
        start, dec_flags, to_feed, _, to_skip = _unpack_cookie(await self.tell())
        if to_feed or to_skip:
            raise io.UnsupportedOperation("the position is inside a multi-byte character; "
                                          "seek before writing")
        await self.buffer.seek(start)
        self._forget_decoded()
        if self._decoder is not None:
            self._decoder.setstate((b"", dec_flags))

    async def flush(self) -> None:
        await self.buffer.flush()

    async def fsync(self) -> None:
        await self.buffer.fsync()

    async def truncate(self, size: int | None = None) -> int:
        await self.flush()
        if size is None:
            size = await self.tell()
        return await self.buffer.truncate(size)

    async def close(self) -> None:
        await self.buffer.close()

    # -- raw positional and vectored I/O (bytes, at the text position) ---------------------

    async def pread(self, n: int, offset: int) -> bytes:
        return await self.buffer.pread(n, offset)

    async def pwrite(self, data: Any, offset: int) -> int:
        moved = await self.buffer.pwrite(data, offset)
        await self._sync_position()  # the read-ahead may hold the old bytes
        return moved

    async def readv(self, bufs: Sequence[Any]) -> int:
        self.buffer._check_readable()
        await self._sync_position()
        return await self.buffer.readv(bufs)

    async def writev(self, bufs: Sequence[Any]) -> int:
        self.buffer._check_writable()
        await self._sync_position()
        return await self.buffer.writev(bufs)

    # -- position ------------------------------------------------------------------------

    async def tell(self) -> int:
        """An opaque cookie for seek(), as io.TextIOWrapper's (often the byte offset)."""
        await self.flush()
        return self._cookie(await self.buffer.tell())

    def _cookie(self, position: int) -> int:
        """tell()'s cookie, the buffer being at ``position`` with nothing to write."""
        if self._decoder is None or self._snapshot is None:
            return position
        dec_flags, fed = self._snapshot
        position -= len(fed)
        if self._used == 0:
            return _pack_cookie(position, dec_flags)
        decoder = self._decoder
        saved = decoder.getstate()
        try:
            return self._find_cookie(decoder, position, dec_flags, fed, self._used)
        finally:
            decoder.setstate(saved)

    def _find_cookie(self, decoder: codecs.IncrementalDecoder, position: int, dec_flags: int,
                     fed: bytes, chars: int) -> int:
        """Replay the decoder from the snapshot until ``chars`` characters
        come out (io.TextIOWrapper.tell, from _pyio)."""
        skip_bytes, dec_flags, chars = self._skip_ahead(decoder, dec_flags, fed, chars)
        start_pos, start_flags = position + skip_bytes, dec_flags
        if chars == 0:
            return _pack_cookie(start_pos, start_flags)
        bytes_fed = decoded = 0
        for i in range(skip_bytes, len(fed)):
            bytes_fed += 1
            decoded += len(decoder.decode(fed[i:i + 1]))
            dec_buffer, dec_flags = decoder.getstate()
            if not dec_buffer and decoded <= chars:  # a safe start point
                start_pos += bytes_fed
                chars -= decoded
                start_flags, bytes_fed, decoded = dec_flags, 0, 0
            if decoded >= chars:
                return _pack_cookie(start_pos, start_flags, bytes_fed, False, chars)
        decoded += len(decoder.decode(b"", final=True))
        if decoded < chars:
            raise OSError("can't reconstruct logical file position")
        return _pack_cookie(start_pos, start_flags, bytes_fed, True, chars)

    def _skip_ahead(self, decoder: codecs.IncrementalDecoder, dec_flags: int, fed: bytes,
                    chars: int) -> tuple[int, int, int]:
        """A guess close before the point, where the decoder holds nothing."""
        skip_bytes = int(self._b2cratio * chars)
        skip_back = 1
        while skip_bytes > 0:
            decoder.setstate((b"", dec_flags))
            n = len(decoder.decode(fed[:skip_bytes]))
            if n <= chars:
                left, flags = decoder.getstate()
                if not left:
                    return skip_bytes, flags, chars - n
                skip_bytes -= len(left)
                skip_back = 1
            else:
                skip_bytes -= skip_back
                skip_back *= 2
        decoder.setstate((b"", dec_flags))
        return 0, dec_flags, chars

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """To a tell() cookie; SEEK_CUR and SEEK_END take only 0, as in io."""
        self.buffer._check_open()
        if whence == os.SEEK_CUR:
            if offset != 0:
                raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
            offset, whence = await self.tell(), os.SEEK_SET
        elif whence == os.SEEK_END:
            if offset != 0:
                raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
            await self.flush()
            position = await self.buffer.seek(0, os.SEEK_END)
            self._reset_codecs(position)
            return position
        if whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if offset < 0:
            raise ValueError(f"negative seek position {offset!r}")
        await self._seek_cookie(offset)
        return offset

    def _reset_codecs(self, position: int) -> None:
        self._forget_decoded()
        if self._decoder is not None:
            self._decoder.reset()
        if self._encoder is not None and position:
            self._encoder.setstate(0)
        elif self._encoder is not None:
            self._encoder.reset()

    async def _seek_cookie(self, cookie: int) -> None:
        """Back to the safe start point, then replay read(chars_to_skip)."""
        await self.flush()
        start, dec_flags, to_feed, need_eof, to_skip = _unpack_cookie(cookie)
        await self.buffer.seek(start)
        self._reset_codecs(cookie)
        decoder = self._decoder
        if decoder is None:
            return
        decoder.setstate((b"", dec_flags))
        self._snapshot = (dec_flags, b"")
        if to_skip:
            chunk = await self.buffer.read(to_feed)
            self._set_decoded(decoder.decode(chunk, need_eof))
            self._snapshot = (dec_flags, chunk)
            if len(self._decoded) < to_skip:
                raise OSError("can't restore logical file position")
            self._used = to_skip
