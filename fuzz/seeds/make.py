#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets (fuzz/seeds/<target>/): a few streams
of valid frames, so that a short run starts from deep states. Input format of the
connection targets: see `fuzz_connection` in fuzz/driver.rs."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload, masked, fin=True, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if masked else 0
    n = len(payload)
    if n <= 125:
        head = bytes([b0, mbit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))


def close(code, reason=b""):
    return struct.pack(">H", code) + reason


def streams(masked):
    f = lambda *a, **k: frame(*a, masked=masked, **k)
    text = "κόσμε".encode()
    yield "hello", 0x00, f(1, b"Hello") + f(9, b"ping") + f(8, close(1000, b"bye"))
    yield "fragments", 0x00, (
        f(1, text[:3], fin=False) + f(9, b"") + f(0, text[3:7], fin=False)
        + f(0, text[7:]) + f(10, b"pong") + f(2, bytes(range(200))) + f(8, b"")
    )
    yield "close_trigger", 0x00, f(1, b"!close now") + f(2, b"dropped") + f(8, close(1000))
    yield "tiny_limits", 0x08, (
        f(2, bytes(100), fin=False) + f(0, bytes(100), fin=False) + f(0, bytes(100))
        + f(2, bytes(120)) + f(1, b"x" * 129)
    )
    yield "receive_buf_late_open", 0x06, f(2, b"abc") + f(9, b"p") + f(1, b"\xed\xa0\x80")


def main():
    for role, masked in (("connection_server", True), ("connection_client", False)):
        d = os.path.join(HERE, role)
        os.makedirs(d, exist_ok=True)
        for name, flags, stream in streams(masked):
            # One chunk-length byte, 0x07: chunks of 8 bytes.
            with open(os.path.join(d, name), "wb") as out:
                out.write(bytes([flags, 0, 0x07]) + stream)
    d = os.path.join(HERE, "decode_header")
    os.makedirs(d, exist_ok=True)
    headers = {
        "unmasked_text": bytes([0x81, 0x05]),
        "masked_text": bytes([0x81, 0x85]) + KEY,
        "len16": bytes([0x82, 0x7E, 0x01, 0x00]),
        "len64_masked": bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]) + KEY,
        "non_minimal": bytes([0x82, 0x7E, 0x00, 0x05]),
    }
    for name, data in headers.items():
        with open(os.path.join(d, name), "wb") as out:
            out.write(data)
    # hub_wire: what the backplane's scripts publish (src/hub_wire.rs), and one
    # input for the structured round trip (4 little-endian u64s, then strings
    # split at 0xff bytes: see fuzz/fuzz_targets/hub_wire.rs).
    d = os.path.join(HERE, "hub_wire")
    os.makedirs(d, exist_ok=True)
    wire = {
        "envelope_text": b"v1\n7\n0\n00000000deadbeef\n42\nt\nhello",
        "envelope_binary": b"v1\n12345\n99\n0123456789abcdef\n1\nb\n\x00\x01\x02\n",
        "presence_join": b'p1\n1700000000000001\nJ\n5\nalice1{"name":"Alice"}',
        "presence_leave": b"p1\n1700000000000002\nL\n3\nbob",
        "presence_join_no_meta": b"p1\n3\nJ\n3\nbob0",
        "structured": struct.pack("<QQQQ", 5, 7, 0, 42)
        + b"deadbeef\xffhello\xffal\nice\xff" + b'{"a":1}',
    }
    for name, data in wire.items():
        with open(os.path.join(d, name), "wb") as out:
            out.write(data)


if __name__ == "__main__":
    main()
