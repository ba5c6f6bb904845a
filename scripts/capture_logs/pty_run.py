"""Run a command on a pseudo-terminal, as a tmuxtrain job runs in a tmux pane, and save the
exact bytes it printed (progress-bar `\\r` redraws and colours included).

    python pty_run.py OUT.log -- python hf_trainer.py

The terminal is 120x40 (COLUMNS/LINES are set too, for libraries that ask the environment).
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import sys
import termios


def main(argv: list[str]) -> int:
    out_path, sep, *cmd = argv
    assert sep == "--" and cmd, __doc__
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.environ.update(COLUMNS="120", LINES="40", TERM="xterm-256color")
        os.execvp(cmd[0], cmd)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    with open(out_path, "wb") as f:
        f.write(b"".join(chunks))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
