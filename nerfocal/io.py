"""The one I/O module: writers that never destroy what they write to, encodings, decode errors, signals.

Standard library only, and a leaf of the package (it imports nothing of nerfocal).

Where :func:`atomic_open` (and :func:`write_text`, :func:`write_json`, :func:`write_bytes`) writes:
    * a regular file or a new path: to a temporary file beside it (``.NAME.XXXX.tmp``), renamed over
      it once complete. A crash, an exception, Ctrl-C or SIGTERM (with :func:`raise_on_sigterm`) leaves
      the previous file as it was and no temporary file behind;
    * a symbolic link: followed. Its target is replaced and the link stays a link;
    * a character device (``/dev/null``, a terminal) or a FIFO: written through, since a rename would
      replace the device or the pipe by a regular file;
    * ``-``: standard output.

A failed write (disk full, quota) is an ``OSError`` whose one-line message names the path.
:func:`check_not_input` refuses an output that is one of the inputs.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_MODES = ("w", "wb")


def text_encoding(encoding: str) -> str:
    """The codec to read with: ``utf-8-sig`` for UTF-8 (it drops a leading byte-order mark).

    Raises:
        ValueError: an encoding Python does not know, naming it.
    """
    try:
        name = codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise ValueError(
            f"encoding: expected a codec Python knows (utf-8, latin-1, cp1252, ...), got {encoding!r}"
        ) from None
    return "utf-8-sig" if name == "utf-8" else name


# --- writing ------------------------------------------------------------------------------------------


class _Checked:
    """A file object whose failed writes raise an ``OSError`` naming the output path (one line)."""

    def __init__(self, handle: Any, where: str, note: str) -> None:
        self._handle, self._where, self._note = handle, where, note

    def _failed(self, err: OSError) -> OSError:
        failure = OSError(f"{self._where}: write failed ({err.strerror or err}){self._note}")
        failure.errno = err.errno
        return failure

    def write(self, data: Any) -> int:
        try:
            return int(self._handle.write(data))
        except OSError as err:
            raise self._failed(err) from err

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as err:
            raise self._failed(err) from err

    def close(self) -> None:
        try:
            self._handle.close()
        except OSError as err:
            raise self._failed(err) from err

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory"))
    for test, name in kinds:
        if test(mode):
            return name
    return "special file"


def _fdopen(fd: int, mode: str, encoding: str) -> Any:
    return os.fdopen(fd, "w", encoding=encoding, newline="\n") if mode == "w" else os.fdopen(fd, "wb")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str = "utf-8") -> Iterator[Any]:
    """Open ``path`` for writing without ever leaving it half-written or replacing what it is.

    The one place nerfocal writes result files (models aside): predictions, reports, configs, figures.
    See the module docstring for what happens to regular files, symbolic links, devices, FIFOs and
    ``-``. Text mode writes LF line ends; a new file gets the usual permissions (``0666`` minus the
    umask), not ``mkstemp``'s 0600.

    Args:
        path: the output file, or ``-`` for standard output.
        mode: ``"w"`` (text) or ``"wb"``.
        encoding: text encoding (mode ``"w"``).

    Raises:
        ValueError: a bad mode, a directory, a socket or a block device.
        FileNotFoundError: the output directory does not exist.
        OSError: the file cannot be created or written (the message names ``path``).
    """
    if mode not in _MODES:
        raise ValueError(f"expected mode 'w' or 'wb', got {mode!r}")
    if str(path) == "-":
        stream = sys.stdout if mode == "w" else sys.stdout.buffer
        yield stream
        stream.flush()
        return
    path = Path(path)
    target = Path(os.path.realpath(path))  # a symbolic link: write its target, keep the link
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        if not (stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
            kind = _kind(info.st_mode)
            expected = "an output file" if kind == "directory" else "a file, a character device or a FIFO"
            raise ValueError(f"{path}: expected {expected}, got a {kind}")
        # a device or a pipe: a rename would replace it by a regular file; write through
        handle = _Checked(_fdopen(os.open(target, os.O_WRONLY), mode, encoding), str(path), "")
        try:
            yield handle
        finally:
            handle.close()
        return
    if not target.parent.is_dir():
        raise FileNotFoundError(f"{path}: the output directory {target.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise OSError(f"{path}: cannot create a file in {target.parent} ({err.strerror})") from err
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        handle = _Checked(_fdopen(fd, mode, encoding), str(path), "; the file was left as it was")
        try:
            yield handle
        finally:
            handle.close()
        os.replace(tmp, target)
    except BaseException:  # KeyboardInterrupt and Terminated included: never leave the temporary file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _parent(path: str | Path) -> None:
    if str(path) != "-":
        Path(os.path.realpath(path)).parent.mkdir(parents=True, exist_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8, LF) with :func:`atomic_open`, creating missing parent directories."""
    _parent(path)
    with atomic_open(path) as handle:
        handle.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON with sorted keys (see :func:`write_text`)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` with :func:`atomic_open`, creating missing parent directories; returns ``path``."""
    _parent(path)
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_not_input(output: str | Path | None, *inputs: str | Path | None, option: str = "--output") -> None:
    """Refuse an ``output`` that is one of ``inputs`` (the same file, through links too).

    ``-``, empty and None values are skipped, and so is an output that is not a regular file (a
    device or a FIFO is written through, which replaces nothing).

    Raises:
        ValueError: naming the option, the output and the input.
    """
    if output is None or str(output) in ("", "-") or not os.path.isfile(output):
        return
    for source in inputs:
        if source is not None and str(source) not in ("", "-") and _same_file(output, source):
            raise ValueError(
                f"{option} {output}: expected a file other than the input {source}, got the same file "
                "(writing it would replace the input)"
            )


# --- reading and decode errors ------------------------------------------------------------------------


def locate_decode_error(path: str | Path, encoding: str, line_no: int = 1) -> tuple[int, int] | None:
    """``(line, 0-based byte in the line)`` of the first bytes of ``path`` not valid in ``encoding``.

    A text stream decodes blocks of several lines, so the line it was reading when the error came is
    only a lower bound (``line_no``); the file is read again line by line in binary to find the line.
    None when that fails (not a regular file, line breaks that are not one byte as in UTF-16).
    """
    number = 0
    try:
        with Path(path).open("rb") as handle:
            for raw in handle:
                number += 1
                try:
                    raw.decode(encoding)
                except UnicodeDecodeError as err:
                    head = raw[: err.start]  # a lone CR ends a line too (universal newlines)
                    number += head.count(b"\r")
                    if number < line_no:
                        break
                    return number, err.start - (head.rfind(b"\r") + 1)
                number += raw.count(b"\r") - raw.endswith(b"\r\n")
    except (OSError, LookupError):
        pass
    return None


def decode_error_message(
    path: str | Path,
    err: UnicodeDecodeError,
    line: int | None = None,
    *,
    byte: int | None = None,
    encoding: str | None = None,
) -> str:
    """The one-line message for bytes of ``path`` that are not valid text: ``path:line: byte B of the line``.

    Args:
        path: the file (``-`` for standard input).
        err: the decode error.
        line: the 1-based line, exact when ``byte`` is given, else a lower bound: a regular file is read
            again to find the line and the byte (:func:`locate_decode_error`).
        byte: 0-based byte of the bad bytes in the line, when known.
        encoding: the encoding the user asked for (default: the codec of ``err``).
    """
    enc = encoding or err.encoding
    found = (line or 1, byte) if byte is not None else None
    if found is None and str(path) != "-" and os.path.isfile(path):
        found = locate_decode_error(path, enc, line or 1)
    if found is not None:
        where = f"{path}:{found[0]}: byte {found[1] + 1} of the line"
    else:
        where = f"{path}:{line}" if line else str(path)
    return (
        f"{where}: not valid {enc} text ({err.reason}); is it a text file? "
        "Pass its encoding with --encoding (for example --encoding latin-1)"
    )


def decoded_lines(stream: IO[bytes], encoding: str, where: str = "-") -> Iterator[str]:
    """Lines of a binary stream decoded like a text file (universal newlines: CRLF and CR become LF).

    Unlike a text wrapper, which decodes blocks of many lines, it decodes line by line, so bytes that
    are not valid in ``encoding`` give the exact line (used for standard input, which cannot be read
    twice to find it).

    Raises:
        ValueError: :func:`decode_error_message` naming ``where:line``.
    """
    decoder = codecs.getincrementaldecoder(text_encoding(encoding))()
    done, pending = 0, ""
    raw = b""
    try:
        for raw in stream:
            pending += decoder.decode(raw)
            held = pending.endswith("\r")  # maybe the first half of a CRLF
            body = (pending[:-1] if held else pending).replace("\r\n", "\n").replace("\r", "\n")
            *lines, rest = body.split("\n")
            for text in lines:
                done += 1
                yield text + "\n"
            pending = rest + ("\r" if held else "")
        raw = b""
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as err:
        head = raw[: max(err.start, 0)]
        line = done + 1 + head.count(b"\r") - head.count(b"\r\n")
        byte = max(err.start, 0) - (head.rfind(b"\r") + 1)
        raise ValueError(decode_error_message(where, err, line, byte=byte, encoding=encoding)) from None
    *lines, rest = pending.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for text in lines:
        yield text + "\n"
    if rest:
        yield rest


def count_lines(path: str | Path, encoding: str = "utf-8", *, skip_blank: bool = False) -> int | None:
    """Lines of a text file as a text reader splits them (LF, CRLF, lone CR), counted in binary.

    For a progress total: fast (``bytes.count`` over 1 MiB blocks; ``skip_blank`` reads line by line).
    None when ``encoding`` does not write line breaks as the single ASCII bytes (UTF-16, UTF-32).
    """
    try:
        if codecs.encode("\n\r", text_encoding(encoding).replace("-sig", "")) != b"\n\r":
            return None
    except (LookupError, ValueError):
        return None
    count, last = 0, b""
    with Path(path).open("rb") as handle:
        if skip_blank:
            return sum(1 for raw in handle if raw.strip())
        while block := handle.read(1 << 20):
            count += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
            if last == b"\r" and block[:1] == b"\n":  # a CRLF split between two blocks
                count -= 1
            last = block[-1:]
    return count + (last not in (b"", b"\n", b"\r"))


# --- signals ------------------------------------------------------------------------------------------


class Terminated(BaseException):
    """SIGTERM was received (raised by the handler that :func:`raise_on_sigterm` installs).

    A ``BaseException`` like ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it and
    :func:`atomic_open` removes its temporary file on the way out.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def raise_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (as SIGINT raises ``KeyboardInterrupt``).

    Python's default for SIGTERM is to die at once, which runs no cleanup and leaves temporary files.
    The previous handler is restored afterwards. Outside the main thread (where Python delivers no
    signals) nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_status(err: BaseException) -> tuple[str, int]:
    """``(signal name, exit status 128 + N)`` of a ``KeyboardInterrupt`` (SIGINT) or :class:`Terminated`."""
    signum = err.signum if isinstance(err, Terminated) else signal.SIGINT
    return signal.Signals(signum).name, 128 + int(signum)
