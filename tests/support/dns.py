"""A tiny authoritative DNS server on 127.0.0.1 (UDP, RFC 1035 wire format) and a stub client that queries it.

The server answers A, AAAA and TXT questions from a zone the test fills in (NXDOMAIN for names it does not hold,
an empty answer for a type a name lacks) and logs every question it was asked. The client builds real queries,
checks that each answer belongs to its question, and follows name compression: what the ownership service's
address guard and DNS challenge are tested with, so both see addresses and TXT strings exactly as they travel in
DNS packets. Standard library only; nothing here talks to anything but the loopback server it was given.
"""

from __future__ import annotations

import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

A, AAAA, TXT = 1, 28, 16
IN = 1
NOERROR, NXDOMAIN = 0, 3
TYPES = {"A": A, "AAAA": AAAA, "TXT": TXT}


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def read_name(packet: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (following compression pointers) and the offset just past it in the packet."""
    labels: list[str] = []
    end = None
    for _ in range(128):  # a pointer loop ends here
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = struct.unpack_from("!H", packet, offset)[0] & 0x3FFF
            continue
        if length == 0:
            return ".".join(labels), end if end is not None else offset + 1
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii"))
        offset += 1 + length
    raise ValueError("DNS name compression loop")


def _rdata(rtype: int, value: str | tuple[str, ...]) -> bytes:
    if rtype == A:
        return socket.inet_pton(socket.AF_INET, str(value))
    if rtype == AAAA:
        return socket.inet_pton(socket.AF_INET6, str(value))
    strings = (value,) if isinstance(value, str) else value  # one TXT record may hold several strings
    return b"".join(bytes([len(s.encode())]) + s.encode() for s in strings)


@dataclass
class DnsServer:
    """``zone``: name -> [(type name, value)]; a TXT value may be a tuple of strings (one record, several strings)."""

    zone: dict[str, list[tuple[str, str | tuple[str, ...]]]] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def start(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.address = self._sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dnsfixture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(packet)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def answer(self, packet: bytes) -> bytes | None:
        try:
            qid, flags, qdcount = struct.unpack_from("!HHH", packet)
            name, end = read_name(packet, 12)
            qtype, qclass = struct.unpack_from("!HH", packet, end)
        except (struct.error, IndexError, ValueError, UnicodeError):
            return None
        if flags & 0x8000 or qdcount != 1:
            return None
        key = name.lower()
        names = {k.lower(): v for k, v in self.zone.items()}
        kind = next((k for k, v in TYPES.items() if v == qtype), str(qtype))
        self.asked.append((key, kind))
        question = packet[12 : end + 4]
        records = [(TYPES[t], v) for t, v in names.get(key, []) if TYPES[t] == qtype and qclass == IN]
        rcode = NOERROR if key in names else NXDOMAIN
        # QR, opcode 0, AA, RD copied from the query, RA off: an authoritative server, not a recursive one
        out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | rcode
        head = struct.pack("!HHHHHH", qid, out_flags, 1, len(records), 0, 0)
        body = b""
        for rtype, value in records:
            rdata = _rdata(rtype, value)
            body += struct.pack("!HHHIH", 0xC00C, rtype, IN, 60, len(rdata)) + rdata
        return head + question + body


@contextmanager
def dns_server(zone: dict[str, list[tuple[str, str | tuple[str, ...]]]]) -> Iterator[DnsServer]:
    server = DnsServer(zone)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class NameNotFound(LookupError):
    """NXDOMAIN: the server says the name does not exist."""


class DnsClient:
    """A stub resolver asking one server (here: the fixture's) over UDP."""

    def __init__(self, address: tuple[str, int], timeout: float = 2.0) -> None:
        self.address = address
        self.timeout = timeout

    def query(self, name: str, qtype: int) -> list[bytes]:
        """The rdata of every answer of ``qtype`` for ``name``; NameNotFound for NXDOMAIN."""
        qid = secrets.randbelow(0x10000)
        question = encode_name(name) + struct.pack("!HH", qtype, IN)
        query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout)
            sock.sendto(query, self.address)
            while True:
                reply, peer = sock.recvfrom(4096)
                if peer[:2] == self.address[:2] and reply[:2] == query[:2]:
                    break
        _rid, flags, qdcount, ancount = struct.unpack_from("!HHHH", reply)
        if not flags & 0x8000 or qdcount != 1 or reply[12 : 12 + len(question)].lower() != question.lower():
            raise OSError("DNS reply does not answer the question asked")
        rcode = flags & 0x000F
        if rcode == NXDOMAIN:
            raise NameNotFound(name)
        if rcode != NOERROR:
            raise OSError(f"DNS server answered rcode {rcode}")
        offset = 12 + len(question)
        out = []
        for _ in range(ancount):
            owner, offset = read_name(reply, offset)
            rtype, rclass, _ttl, rdlength = struct.unpack_from("!HHIH", reply, offset)
            offset += 10
            rdata = reply[offset : offset + rdlength]
            offset += rdlength
            if rtype == qtype and rclass == IN and owner.lower() == name.lower().rstrip("."):
                out.append(rdata)
        return out

    def addresses(self, name: str) -> list[str]:
        """Every A and AAAA address of ``name``, like getaddrinfo: socket.gaierror if there is none."""
        found = []
        for qtype, family in ((A, socket.AF_INET), (AAAA, socket.AF_INET6)):
            try:
                found += [socket.inet_ntop(family, rdata) for rdata in self.query(name, qtype)]
            except NameNotFound:
                break
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} has no address")
        return found

    def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name`` as one string (its character-strings joined, as RFC 7208 §3.3 does)."""
        out = []
        for rdata in self.query(name, TXT):
            parts, i = [], 0
            while i < len(rdata):
                length = rdata[i]
                parts.append(rdata[i + 1 : i + 1 + length].decode("utf-8", "replace"))
                i += 1 + length
            out.append("".join(parts))
        return out
