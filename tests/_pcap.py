# -*- test-case-name: tests.test_pcap -*-
"""
A small libpcap reader with TCP stream reassembly, for replaying captured
Finagle traffic in tests.

Pure standard library: classic libpcap files (either byte order, micro- or
nanosecond timestamps; not pcapng), link types null/loopback (0), Ethernet
(1), raw IP (101), OpenBSD loopback (108) and Linux cooked (113); IPv4 and
IPv6; TCP only.  Each TCP connection is identified by its 4-tuple, its client
side by the SYN without ACK, and each direction is reassembled in sequence
order: retransmitted and duplicated bytes are dropped and out-of-order
segments are held back until the gap before them is filled.
"""

import os
import struct

__all__ = ["Connection", "readConnections", "splitFrames"]

_FIN = 0x01
_SYN = 0x02
_RST = 0x04
_ACK = 0x10

# IPv6 extension headers that may sit between the fixed header and TCP.
_IPV6_EXTENSIONS = (0, 43, 60)


class Connection:
    """
    One reassembled TCP connection.

    @ivar clientHost: The client's IP address, as text.
    @ivar clientPort: The client's TCP port.
    @ivar serverHost: The server's IP address, as text.
    @ivar serverPort: The server's TCP port.
    @ivar clientBytes: Everything the client sent, in sequence order.
    @type clientBytes: L{bytes}
    @ivar serverBytes: Everything the server sent, in sequence order.
    @type serverBytes: L{bytes}
    @ivar exchanges: The payload of both directions in the order it became
        deliverable, as C{("c" | "s", bytes)} pairs; consecutive payloads of
        the same direction are merged.
    @type exchanges: L{list} of L{tuple}
    @ivar closedBy: C{"c"} or C{"s"} for the side that sent the first FIN or
        RST, or L{None} if the capture shows neither.
    @ivar sawSyn: Whether the connection's SYN is in the capture (if not, the
        side that sent the first packet is taken to be the client).
    """

    def __init__(self, clientHost, clientPort, serverHost, serverPort):
        self.clientHost = clientHost
        self.clientPort = clientPort
        self.serverHost = serverHost
        self.serverPort = serverPort
        self.exchanges = []
        self.closedBy = None
        self.sawSyn = False
        self._streams = {"c": _Stream(), "s": _Stream()}

    @property
    def clientBytes(self):
        """
        @return: The client-to-server byte stream.
        @rtype: L{bytes}
        """
        return b"".join(data for side, data in self.exchanges if side == "c")

    @property
    def serverBytes(self):
        """
        @return: The server-to-client byte stream.
        @rtype: L{bytes}
        """
        return b"".join(data for side, data in self.exchanges if side == "s")

    def __repr__(self):
        client = f"{self.clientHost}:{self.clientPort}"
        server = f"{self.serverHost}:{self.serverPort}"
        sizes = f"{len(self.clientBytes)}/{len(self.serverBytes)} bytes"
        return f"<Connection {client} -> {server}, {sizes}>"

    def _segment(self, side, flags, seq, payload):
        """
        Account for one TCP segment sent by C{side}.
        """
        stream = self._streams[side]
        if flags & _SYN:
            stream.start(seq + 1)
        elif stream.nextSeq is None:
            stream.start(seq)
        if payload:
            data = stream.accept(seq, payload)
            if data:
                if self.exchanges and self.exchanges[-1][0] == side:
                    self.exchanges[-1] = (side, self.exchanges[-1][1] + data)
                else:
                    self.exchanges.append((side, data))
        if flags & (_FIN | _RST) and self.closedBy is None:
            self.closedBy = side


class _Stream:
    """
    Reassembly state of one direction of a TCP connection.

    @ivar isn: The sequence number of the first data byte.
    @ivar nextSeq: The sequence number of the next byte to deliver, or
        L{None} before the first segment.
    @ivar pending: Out-of-order payloads, keyed by sequence number.
    """

    def __init__(self):
        self.isn = None
        self.nextSeq = None
        self.pending = {}

    def start(self, seq):
        """
        Set the sequence number of the first data byte, if not yet known.
        """
        if self.nextSeq is None:
            self.isn = self.nextSeq = seq & 0xFFFFFFFF

    def accept(self, seq, payload):
        """
        Take one segment's payload and return the bytes that became
        deliverable in order because of it (possibly none).
        """
        self._store(seq, payload)
        delivered = []
        progress = True
        while progress:
            progress = False
            for start in list(self.pending):
                data = self.pending[start]
                offset = (self.nextSeq - start) & 0xFFFFFFFF
                if offset >= 0x80000000:
                    continue  # still in the future
                del self.pending[start]
                if offset < len(data):
                    delivered.append(data[offset:])
                    self.nextSeq = (self.nextSeq + len(data) - offset) & 0xFFFFFFFF
                    progress = True
        return b"".join(delivered)

    def _store(self, seq, payload):
        """
        Remember a payload unless it is entirely old data.
        """
        seq &= 0xFFFFFFFF
        ahead = (seq + len(payload) - self.nextSeq) & 0xFFFFFFFF
        if ahead == 0 or ahead >= 0x80000000:
            return  # a pure retransmission
        if len(self.pending.get(seq, b"")) < len(payload):
            self.pending[seq] = payload


def _ipPayload(linkType, frame):
    """
    Strip the link-layer header from C{frame}.

    @return: C{(ipVersion, packet)} or L{None} for non-IP frames.
    """
    if linkType in (0, 108):  # BSD null/loopback: 4-byte address family
        packet = frame[4:]
    elif linkType == 1:  # Ethernet
        offset, etherType = 14, struct.unpack("!H", frame[12:14])[0]
        while etherType in (0x8100, 0x88A8):  # VLAN tags
            etherType = struct.unpack("!H", frame[offset + 2 : offset + 4])[0]
            offset += 4
        if etherType not in (0x0800, 0x86DD):
            return None
        packet = frame[offset:]
    elif linkType == 113:  # Linux cooked
        if struct.unpack("!H", frame[14:16])[0] not in (0x0800, 0x86DD):
            return None
        packet = frame[16:]
    elif linkType == 101:  # raw IP
        packet = frame
    else:
        raise ValueError("unsupported pcap link type %d" % (linkType,))
    if not packet:
        return None
    version = packet[0] >> 4
    return (version, packet) if version in (4, 6) else None


def _tcpSegment(version, packet):
    """
    Parse the IP and TCP headers of C{packet}.

    @return: C{(srcHost, srcPort, dstHost, dstPort, flags, seq, payload)},
        or L{None} if it is not an unfragmented TCP segment.
    """
    if version == 4:
        headerLength = (packet[0] & 0x0F) * 4
        totalLength, fragment, protocol = struct.unpack("!H2xH1xB", packet[2:10])
        if protocol != 6 or fragment & 0x3FFF:
            return None
        src, dst = _ipv4(packet[12:16]), _ipv4(packet[16:20])
        tcp = packet[headerLength : totalLength or len(packet)]
    else:
        payloadLength, nextHeader = struct.unpack("!HB", packet[4:7])
        src, dst = _ipv6(packet[8:24]), _ipv6(packet[24:40])
        body = packet[40 : 40 + payloadLength] if payloadLength else packet[40:]
        while nextHeader in _IPV6_EXTENSIONS:
            nextHeader, size = body[0], (body[1] + 1) * 8
            body = body[size:]
        if nextHeader != 6:
            return None  # UDP, ICMP or a fragment
        tcp = body
    srcPort, dstPort, seq, offsetByte, flags = struct.unpack("!HHIxxxxBB", tcp[:14])
    return (src, srcPort, dst, dstPort, flags, seq, tcp[(offsetByte >> 4) * 4 :])


def _ipv4(raw):
    """
    Format a raw IPv4 address.
    """
    return ".".join(str(b) for b in raw)


def _ipv6(raw):
    """
    Format a raw IPv6 address (uncompressed).
    """
    return ":".join("%x" % w for w in struct.unpack("!8H", raw))


def _packets(data):
    """
    Iterate over the link type and captured bytes of each libpcap record.
    """
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError("not a libpcap file (magic %s)" % (magic.hex(),))
    linkType = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    offset = 24
    while offset + record.size <= len(data):
        _, _, capturedLength, length = record.unpack_from(data, offset)
        offset += record.size
        if capturedLength < length or offset + capturedLength > len(data):
            raise ValueError("truncated packet at offset %d" % (offset,))
        yield linkType, data[offset : offset + capturedLength]
        offset += capturedLength


def readConnections(path):
    """
    Read a libpcap file and reassemble its TCP connections.

    @param path: The capture's file name.
    @return: The connections in the order of their first packet.
    @rtype: L{list} of L{Connection}
    """
    with open(path, "rb") as f:
        data = f.read()
    connections = []
    current = {}  # frozenset of both endpoints -> Connection
    for linkType, frame in _packets(data):
        ip = _ipPayload(linkType, frame)
        segment = ip and _tcpSegment(*ip)
        if not segment:
            continue
        src, srcPort, dst, dstPort, flags, seq, payload = segment
        key = frozenset([(src, srcPort), (dst, dstPort)])
        connection = current.get(key)
        opening = flags & (_SYN | _ACK) == _SYN
        if opening and connection is not None:
            client = connection._streams["c"]
            if (connection.clientHost, connection.clientPort) != (src, srcPort) or (
                client.isn != (seq + 1) & 0xFFFFFFFF
            ):
                connection = None  # the 4-tuple is being reused
        if connection is None:
            if flags & (_SYN | _ACK) == _SYN | _ACK:  # the SYN was not captured
                connection = Connection(dst, dstPort, src, srcPort)
            else:
                connection = Connection(src, srcPort, dst, dstPort)
            connection.sawSyn = bool(opening)
            current[key] = connection
            connections.append(connection)
        fromClient = (src, srcPort) == (connection.clientHost, connection.clientPort)
        connection._segment("c" if fromClient else "s", flags, seq, payload)
    return connections


def splitFrames(data):
    """
    Split a byte stream into frames with a 4-byte big-endian length prefix.

    @param data: The bytes to split.
    @type data: L{bytes}
    @return: C{(frames, rest)}: the whole frames, each including its length
        prefix, and the trailing bytes that do not make a whole frame.
    @rtype: L{tuple} of (L{list} of L{bytes}, L{bytes})
    """
    frames = []
    offset = 0
    while offset + 4 <= len(data):
        end = offset + 4 + struct.unpack("!I", data[offset : offset + 4])[0]
        if end > len(data):
            break
        frames.append(data[offset:end])
        offset = end
    return frames, data[offset:]


FINAGLE_CAPTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "finagle-end-to-end.pcap")

_finagleConnections = None


def finagleConnections(testCase):
    """
    Read Finagle's end-to-end capture (C{tests/data/}, see its README)
    once, failing C{testCase} with a clear message if it is missing.

    @return: the list of its L{Connection}s.
    """
    global _finagleConnections
    if not os.path.exists(FINAGLE_CAPTURE):
        testCase.fail(
            "Finagle capture not found at %s" % (FINAGLE_CAPTURE,)
        )
    if _finagleConnections is None:
        _finagleConnections = readConnections(FINAGLE_CAPTURE)
    return _finagleConnections
