#!/usr/bin/env python3
"""A text-protocol client for isml servers, standard library only.

The protocol is in docs/text-protocol.md. Each command is one line,
`START | COMMAND=<CMD> | NAME=VALUE | ... | END`, answered by exactly one
`OK` or `BAD`, in order. Between answers the server pushes `SUB` (a
subscribed variable's value), `MSG` (a message from a device) and `HELLO?`
(a keep-alive question, which this client answers with `HELLO!`).

As a program:

    python3 client.py --host 127.0.0.1 --port 7001 --id cab-7 \\
        sub door  pub door open  msg cab-8 hello  listen 5

runs the commands in order (each waits for its answer), prints every line
received, and with `listen N` prints pushes for N seconds.

As a library:

    c = TextClient("127.0.0.1", 7001)
    c.command("ID", ID="cab-7")         # True for OK, False for BAD
    c.command("SUB", VARIABLE="door")
    c.command("PUB", VARIABLE="door", VALUE="open")
    print(c.next_push(timeout=2))       # ('SUB', {'VARIABLE': 'door', 'VALUE': 'open'})
"""

import argparse
import queue
import socket
import sys
import threading


def escape(value):
    """Escapes a value: `%`, `|` and control characters as %XX, and a space or
    tab at either end (spaces around `|` are insignificant)."""
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in "%|" or ord(ch) < 0x20 or ord(ch) == 0x7F or (i in (0, last) and ch in " \t"):
            out.extend("%{:02X}".format(b) for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def unescape(value):
    """Reverses escape(): %XX is that byte; any other % stays."""
    raw = value.encode("utf-8")
    out = bytearray()
    i = 0
    hexdigits = b"0123456789abcdefABCDEF"
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) and raw[i + 1] in hexdigits and raw[i + 2] in hexdigits:
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8")


def format_line(command, **params):
    parts = ["START", "COMMAND=" + command]
    parts += ["{}={}".format(name, escape(str(value))) for name, value in params.items()]
    parts.append("END")
    return " | ".join(parts)


def parse_line(line):
    """Returns (COMMAND, {NAME: value}), or None for a line that is not one."""
    parts = [p.strip(" \t") for p in line.rstrip("\r\n").split("|")]
    if len(parts) < 3 or parts[0].upper() != "START" or parts[-1].upper() != "END":
        return None
    params = {}
    for part in parts[1:-1]:
        name, sep, value = part.partition("=")
        if not sep:
            return None
        params[name.strip(" \t").upper()] = unescape(value.strip(" \t"))
    command = params.pop("COMMAND", None)
    if command is None:
        return None
    return command.upper(), params


class TextClient:
    """One connection. A reader thread sorts received lines into answers and
    pushes, and answers HELLO? itself."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.answers = queue.Queue()
        self.pushes = queue.Queue()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        # Lines sent whose answer has not arrived: our own HELLO! answers
        # included, so that their OK is not taken for a command's.
        self.pending = []
        self.timeout = timeout
        threading.Thread(target=self._read, daemon=True).start()

    def _send(self, line, kind):
        with self.lock:
            self.pending.append(kind)
            self.sock.sendall((line + "\n").encode("utf-8"))

    def _read(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    self._received(raw.decode("utf-8", "replace"))
        except OSError:
            pass
        self.closed.set()
        self.pushes.put(("CLOSED", {}))
        self.answers.put(("CLOSED", {}))

    def _received(self, text):
        parsed = parse_line(text)
        if parsed is None:
            return
        command, params = parsed
        if command in ("OK", "BAD"):
            with self.lock:
                kind = self.pending.pop(0) if self.pending else "command"
            if kind == "command":
                self.answers.put((command, params))
        elif command == "HELLO?":
            self._send(format_line("HELLO!"), "hello")
        else:
            self.pushes.put((command, params))

    def command(self, command, **params):
        """Sends a command and waits for its answer: True for OK, False for BAD
        (the reason, if the server gives reasons, is in self.last_reason)."""
        self._send(format_line(command, **params), "command")
        answer, params = self.answers.get(timeout=self.timeout)
        if answer == "CLOSED":
            raise ConnectionError("the server closed the connection")
        self.last_reason = params.get("REASON")
        return answer == "OK"

    def next_push(self, timeout=None):
        """The next SUB, MSG or CLOSE push as (COMMAND, params); None on timeout."""
        try:
            return self.pushes.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        try:
            self.command("CLOSE")
        except (ConnectionError, OSError, queue.Empty):
            pass
        self.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7001)
    ap.add_argument("--id", help="the device id to claim (ID)")
    ap.add_argument("--token", help="a token for the server's authenticator")
    ap.add_argument("steps", nargs="*", help="sub VAR | unsub VAR | unsuball | pub VAR VALUE | "
                    "del VAR | msg DEVICE VALUE | listen SECONDS")
    args = ap.parse_args()
    c = TextClient(args.host, args.port)
    if args.id:
        params = {"ID": args.id}
        if args.token:
            params["TOKEN"] = args.token
        print("ID", "OK" if c.command("ID", **params) else "BAD")
    steps = list(args.steps)
    arity = {"sub": 1, "unsub": 1, "unsuball": 0, "pub": 2, "del": 1, "msg": 2, "listen": 1}
    names = {"sub": ["VARIABLE"], "unsub": ["VARIABLE"], "unsuball": [], "pub": ["VARIABLE", "VALUE"],
             "del": ["VARIABLE"], "msg": ["DEVICE", "VALUE"]}
    while steps:
        step = steps.pop(0).lower()
        if step not in arity or len(steps) < arity[step]:
            sys.exit("bad step {!r}: see --help".format(step))
        values, steps = steps[:arity[step]], steps[arity[step]:]
        if step == "listen":
            import time
            end = time.time() + float(values[0])
            while time.time() < end:
                push = c.next_push(timeout=max(0.0, end - time.time()))
                if push:
                    print(push[0], push[1])
            continue
        ok = c.command(step.upper(), **dict(zip(names[step], values)))
        print(step.upper(), " ".join(values), "OK" if ok else "BAD")
    c.close()


if __name__ == "__main__":
    main()
