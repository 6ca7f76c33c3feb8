"""A command run as a terminal runs it: in a new pseudo-terminal whose controlling process it is,
as a shell's foreground job is. A typed Ctrl-C then reaches its whole process group (children
included), and closing the terminal hangs it up, as closing a terminal window does."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import termios
import threading


def _take_terminal() -> None:
    # Run in the child after setsid(): its standard input, the new terminal, becomes its own.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, args: list[str], cwd, env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        try:
            self.process = subprocess.Popen(
                args,
                cwd=cwd,
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
        finally:
            os.close(slave)
        self.output = bytearray()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def hang_up(self) -> None:
        """Close the terminal: the kernel sends SIGHUP to its controlling process, and whatever
        that process writes afterwards fails."""
        self._closing.set()
        self._reader.join()
        os.close(self._master)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def screen_lines(self) -> list[str]:
        """The lines left on the screen: each is what follows its last carriage return (a
        progress bar redraws itself from the first column, padded over what it replaces)."""
        text = self.output.decode(errors="replace").replace("\r\n", "\n")
        return [line.rsplit("\r", 1)[-1].rstrip() for line in text.removesuffix("\n").split("\n")]

    def _read(self) -> None:
        while not self._closing.is_set():
            if not select.select([self._master], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:  # EIO: every process has closed the terminal
                return
            if not data:
                return
            self.output += data
