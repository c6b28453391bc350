"""
Tests for L{tests._pcap}, the libpcap reader used to replay real Finagle
traffic, against a synthetic capture and Finagle's own end-to-end capture.
"""

import os
import struct
import tempfile

from twisted.trial.unittest import TestCase

from tests._pcap import finagleConnections, readConnections, splitFrames

# Frames cut from the capture, as listed in MUX.md section 1.9.
G4_TPING = "0000000441000001"
G4_RPING = "00000004bf000001"
G7_TDRAIN = "0000000440000001"
G7_RDRAIN = "00000004c0000001"
G8_NACK = "00000007fe000002020000"
G9_TDISPATCH_DTAB = (
    "000000ad0200000200020028636f6d2e747769747465722e66696e61676c652e747261"
    "63696e672e5472616365436f6e74657874002093c578d3944dc34e93c578d3944dc34e"
    "93c578d3944dc34e0000000000000000001c636f6d2e747769747465722e66696e6167"
    "6c652e446561646c696e650010142088086e1fe6807fffffffffffffff000000010004"
    "2f666f6f00042f62617280010001000000057175657279000000000b0001000000026f"
    "6b00"
)
G10_ERROR = (
    "00000064fe000002010000"
    + (
        b"org.apache.thrift.protocol.TProtocolException: "
        b"Expected protocol id ffffff82 but got ffffff80"
    ).hex()
)
G11_CALL = "0000001b80010001000000057175657279000000000b0001000000026f6b00"
G11_REPLY = "0000001d80010002000000057175657279000000000b0000000000046f6b6f6b00"
G12_CALL = (
    "00000028800100010000001b5f5f63616e5f5f66696e61676c655f5f74726163655f5f"
    "76335f5f0000000000"
)
G12_REPLY = G12_CALL.replace("80010001", "80010002", 1)
G13_REPLY = "0000001e0080010002000000057175657279000000000b0000000000046f6b6f6b00"

def captureConnections(testCase):
    """
    Read the Finagle capture once, failing C{testCase} if it is missing.
    """
    connections = finagleConnections(testCase)
    return connections


def captureFrames(testCase, side):
    """
    Collect every whole frame that one side (C{"c"} or C{"s"}) sent in the
    capture, as hex.
    """
    frames = set()
    for connection in captureConnections(testCase):
        data = connection.clientBytes if side == "c" else connection.serverBytes
        frames.update(frame.hex() for frame in splitFrames(data)[0])
    return frames


def tcpPacket(src, dst, flags, seq, payload=b"", ipv6=False):
    """
    Build an IP packet holding one TCP segment between two C{(host, port)}
    pairs (hosts as 4 or 16 raw bytes).
    """
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, 0, 5 << 4, flags, 65535, 0, 0)
    tcp += payload
    if ipv6:
        return struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + src[0] + dst[0] + tcp
    header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0)
    return header + src[0] + dst[0] + tcp


def pcapFile(packets, linkType, order):
    """
    Build a libpcap file around link-layer frames built by the caller.
    """
    data = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linkType)
    for i, frame in enumerate(packets):
        data += struct.pack(order + "IIII", 1450000000, i, len(frame), len(frame))
        data += frame
    return data


class SyntheticCaptureTests(TestCase):
    """
    Tests for L{readConnections} and L{splitFrames} on captures built here.
    """

    def write(self, data):
        """
        Write C{data} to a temporary file and return its name.
        """
        fd, path = tempfile.mkstemp(suffix=".pcap")
        self.addCleanup(os.remove, path)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def test_reassembly(self):
        """
        Out-of-order, duplicated and overlapping segments reassemble in order.
        """
        client = (bytes([10, 0, 0, 1]), 40000)
        server = (bytes([10, 0, 0, 2]), 10119)
        clientIsn, serverIsn = 0xFFFFFFF0, 5000  # the client's numbers wrap
        segments = [
            tcpPacket(client, server, 0x02, clientIsn),
            tcpPacket(server, client, 0x12, serverIsn),
            tcpPacket(client, server, 0x10, clientIsn + 1),
            tcpPacket(client, server, 0x18, clientIsn + 7, b"world"),
            tcpPacket(client, server, 0x18, clientIsn + 1, b"hello "),
            tcpPacket(client, server, 0x18, clientIsn + 1, b"hello "),
            tcpPacket(client, server, 0x18, clientIsn + 4, b"lo wor"),
            tcpPacket(server, client, 0x18, serverIsn + 1, b"ok"),
            tcpPacket(client, server, 0x18, clientIsn + 10, b"ldbye"),
            tcpPacket(server, client, 0x18, serverIsn + 1, b"ok"),
            tcpPacket(server, client, 0x11, serverIsn + 3),
        ]
        ethernet = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
        frames = [ethernet + segment for segment in segments]
        connections = readConnections(self.write(pcapFile(frames, 1, ">")))
        self.assertEqual(len(connections), 1)
        [connection] = connections
        self.assertEqual(
            (connection.clientHost, connection.clientPort, connection.serverPort),
            ("10.0.0.1", 40000, 10119),
        )
        self.assertEqual(
            connection.exchanges, [("c", b"hello world"), ("s", b"ok"), ("c", b"bye")]
        )
        self.assertEqual(connection.clientBytes, b"hello worldbye")
        self.assertEqual(connection.serverBytes, b"ok")
        self.assertEqual(connection.closedBy, "s")

    def test_cookedIPv6(self):
        """
        Little-endian Linux cooked captures of IPv6 traffic are read.
        """
        client = (b"\x00" * 15 + b"\x01", 50000)
        server = (b"\x00" * 15 + b"\x01", 10119)
        packets = [
            tcpPacket(client, server, 0x02, 99, ipv6=True),
            tcpPacket(client, server, 0x18, 100, bytes.fromhex(G4_TPING), ipv6=True),
            tcpPacket(server, client, 0x18, 7, bytes.fromhex(G4_RPING), ipv6=True),
        ]
        cooked = [struct.pack("!HHH8sH", 0, 772, 6, b"", 0x86DD) + p for p in packets]
        [connection] = readConnections(self.write(pcapFile(cooked, 113, "<")))
        self.assertEqual(connection.clientHost, "0:0:0:0:0:0:0:1")
        self.assertEqual((connection.clientPort, connection.sawSyn), (50000, True))
        self.assertEqual(
            connection.exchanges,
            [("c", bytes.fromhex(G4_TPING)), ("s", bytes.fromhex(G4_RPING))],
        )

    def test_splitFrames(self):
        """
        L{splitFrames} returns the whole frames and the incomplete remainder.
        """
        data = bytes.fromhex(G4_TPING + "00000000" + "0000000441")
        self.assertEqual(
            splitFrames(data),
            (
                [bytes.fromhex(G4_TPING), b"\x00\x00\x00\x00"],
                bytes.fromhex("0000000441"),
            ),
        )
        self.assertEqual(splitFrames(b"\x00\x00"), ([], b"\x00\x00"))


class FinagleCaptureTests(TestCase):
    """
    Tests for L{readConnections} on Finagle's end-to-end ThriftMux capture.
    """

    def test_connections(self):
        """
        The capture holds 45 TCP connections to port 10119, each opened by a SYN.
        """
        # Its description once said 61; the file's 911 packets
        # hold 45 SYNs (client ports 56236-56241 and 56299-56337).
        connections = captureConnections(self)
        self.assertEqual(len(connections), 45)
        self.assertEqual({c.serverPort for c in connections}, {10119})
        self.assertTrue(all(c.sawSyn for c in connections))

    def test_wholeFrames(self):
        """
        Both halves of every connection split into whole frames with nothing left over.
        """
        for connection in captureConnections(self):
            for side, data in connection.exchanges:
                frames, rest = splitFrames(data)
                self.assertEqual(rest, b"", (connection, side))
                self.assertEqual(b"".join(frames), data)

    def test_pingFrames(self):
        """
        Golden vectors G4 (Tping from clients, Rping from the server) occur.
        """
        self.assertIn(G4_TPING, captureFrames(self, "c"))
        self.assertIn(G4_RPING, captureFrames(self, "s"))

    def test_drainFrames(self):
        """
        Golden vectors G7 (Tdrain from the server, Rdrain from clients) occur.
        """
        self.assertIn(G7_TDRAIN, captureFrames(self, "s"))
        self.assertIn(G7_RDRAIN, captureFrames(self, "c"))

    def test_nackFrame(self):
        """
        Golden vector G8 (RdispatchNack without contexts) occurs in the server half.
        """
        self.assertIn(G8_NACK, captureFrames(self, "s"))

    def test_dispatchFrames(self):
        """
        Golden vectors G9 (Tdispatch with a dtab) and G10 (RdispatchError) occur.
        """
        self.assertIn(G9_TDISPATCH_DTAB, captureFrames(self, "c"))
        self.assertIn(G10_ERROR, captureFrames(self, "s"))

    def test_vanillaFrames(self):
        """
        Golden vectors G11 (plain framed Thrift call and reply) occur in the capture.
        """
        self.assertIn(G11_CALL, captureFrames(self, "c"))
        self.assertIn(G11_REPLY, captureFrames(self, "s"))

    def test_tTwitterFrames(self):
        """
        Golden vectors G12 (TTwitter upgrade) and G13 (TTwitter reply) occur.
        """
        self.assertIn(G12_CALL, captureFrames(self, "c"))
        self.assertIn(G12_REPLY, captureFrames(self, "s"))
        self.assertIn(G13_REPLY, captureFrames(self, "s"))
