"""
The C{twistd txscales} plugin; the real code is imported only when used.
"""

from twisted.application.service import ServiceMaker

txscales = ServiceMaker(
    "txscales",
    "txscales.tap",
    "txscales: ThriftMux servers and demos, Kafka producer, Redis benchmark"
    " (serve, demo-server, demo-client, kafka-produce, redis-bench)",
    "txscales",
)
