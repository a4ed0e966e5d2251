#!/usr/bin/env python3
"""Half-sent requests: opens N connections to a relay, sends half a request
head on each (`GET /ws?user=x HTTP/1.1\\r\\nHost: x\\r\\n`, then nothing),
and counts how many the relay still holds open at the given instants
(seconds after the first connection). Standard library only.

Usage: bench/probes/half_sent.py PORT [N] [SECONDS...]   (default: 200, at 1 5 9 11 15 40 75)
"""
import socket
import sys
import time


def still_open(sock):
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    instants = [float(s) for s in sys.argv[3:]] or [1, 5, 9, 11, 15, 40, 75]
    started = time.monotonic()
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.sendall(b"GET /ws?user=x HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass  # closed before the write: counted as closed below
        held.append(sock)
    for at in instants:
        time.sleep(max(0.0, started + at - time.monotonic()))  # waiting for the instant to measure at
        print(f"after {at:g} s: {sum(map(still_open, held))} of {count} still open", flush=True)


if __name__ == "__main__":
    main()
