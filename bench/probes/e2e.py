#!/usr/bin/env python3
"""One client, no load: send -> ack and send -> own message through a relay.

The complement of bench/run's floor on an otherwise idle machine: how much
the relay's whole path (WebSocket in, majority insert, change stream,
fan-out, WebSocket out) adds to MongoDB's own insert -> change-event
latency. Standard library only; a raw-socket WebSocket client, so the
client's own cost stays small. See docs/benchmarks.md for how it was run.

Usage: bench/probes/e2e.py PORT [COUNT]   (relay on 127.0.0.1:PORT, auth mode none)
"""
import base64
import json
import os
import socket
import struct
import sys
import time


def connect(port, user):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws?user={user} HTTP/1.1\r\nHost: probe\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    status, rest = head.split(b"\r\n\r\n", 1)
    if not status.startswith(b"HTTP/1.1 101"):
        sys.exit(f"upgrade refused: {status.decode(errors='replace')}")
    return sock, rest


def send_text(sock, text):
    payload = text.encode()
    mask = os.urandom(4)
    if len(payload) < 126:
        header = bytes([0x81, 0x80 | len(payload)])
    else:
        header = bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(payload))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


class Frames:
    """Text frames from the server; pings are answered, other control frames skipped."""

    def __init__(self, sock, buffered):
        self.sock, self.buf = sock, buffered

    def next_text(self):
        while True:
            frame = self._frame()
            if frame is None:
                self.buf += self.sock.recv(65536)
                continue
            opcode, payload = frame
            if opcode == 0x1:
                return payload.decode()
            if opcode == 0x9:
                mask = os.urandom(4)
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            if opcode == 0x8:
                sys.exit("the relay closed the connection")

    def _frame(self):
        if len(self.buf) < 2:
            return None
        opcode, length, offset = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
        if length == 126:
            if len(self.buf) < 4:
                return None
            length, offset = struct.unpack(">H", self.buf[2:4])[0], 4
        elif length == 127:
            if len(self.buf) < 10:
                return None
            length, offset = struct.unpack(">Q", self.buf[2:10])[0], 10
        if len(self.buf) < offset + length:
            return None
        payload, self.buf = self.buf[offset : offset + length], self.buf[offset + length :]
        return opcode, payload


def percentiles(name, values):
    values.sort()
    pick = lambda q: values[min(len(values) - 1, int(len(values) * q))]
    print(f"{name}: p50 {pick(0.5):.3f} ms, p99 {pick(0.99):.3f} ms ({len(values)} sends)")


def main():
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    sock, rest = connect(port, "probe")
    frames = Frames(sock, rest)
    # client_id is unique per run: a repeated one is an idempotent resend,
    # answered with the original ack and not written again.
    room = f"probe-{os.getpid()}-{int(time.time())}"
    send_text(sock, json.dumps({"type": "join", "room": room}))
    while '"joined"' not in frames.next_text():
        pass
    acks, messages = [], []
    for i in range(count):
        started = time.perf_counter()
        send_text(sock, json.dumps({"type": "send", "room": room, "client_id": f"{room}-{i}", "body": {"pad": "x" * 100}}))
        ack = message = None
        while ack is None or message is None:
            text = frames.next_text()
            now = time.perf_counter()
            if text.startswith('{"type":"ack"'):
                ack = now
            elif text.startswith('{"type":"message"'):
                message = now
        acks.append((ack - started) * 1000)
        messages.append((message - started) * 1000)
        time.sleep(0.004)  # pacing between sends (about 200/s), not synchronisation
    percentiles("send -> ack", acks)
    percentiles("send -> own message", messages)


if __name__ == "__main__":
    main()
