"""
Kafka producers' throughput against Tansu, in one run: records per second
(and the producer process's CPU per record) of every producer of
L{producers.PRODUCERS}, for each value size, the median of several rounds
whose producer order alternates.

Run by C{benchmarks/kafka/run} (which installs Tansu and the benchmark's
venv) as C{.peers/kafka-bench/bin/python benchmarks/kafka/bench.py}. Each
measurement gets a fresh broker (same binary, same options: memory storage
on a free port of 127.0.0.1) and a one-partition topic, so that no run
pays for the records of the one before; the producer runs in a process of
its own. Prints a markdown table and writes it with every figure to
C{--out}: C{kafka.md} and C{kafka.json}.
"""

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from producers import PRODUCERS, SETTINGS, WARMUP  # noqa: E402

TANSU = os.path.join(REPO, ".peers", "tansu", "bin", "tansu")
PYTHONS = {"bench": sys.executable, "txscales": os.path.join(REPO, ".venv", "bin", "python")}


class Broker:
    """
    A Tansu process on a free port of 127.0.0.1, with memory storage.
    """

    def __init__(self, timeout=15.0):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.bootstrap = "127.0.0.1:%d" % (port,)
        url = "tcp://" + self.bootstrap
        self.output = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            [TANSU, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise SystemExit("Tansu did not start:\n" + "".join(self.output))

    def _read(self):
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("ready in "):
                self._ready.set()
        self._ready.set()

    def stop(self):
        self.process.kill()
        self.process.wait()


def createTopic(bootstrap, topic):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        answer = admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=10000)
    finally:
        admin.close()
    errors = [t for t in answer["topics"] if t["error_code"] != 0]
    if errors:
        raise SystemExit("creating %s failed: %r" % (topic, errors))


def runOnce(name, count, size, timeout):
    """
    One measurement of producer C{name} against a fresh broker.

    @return: the JSON line its process printed, as a dictionary.
    """
    broker = Broker()
    try:
        createTopic(broker.bootstrap, "bench")
        argv = [PYTHONS[PRODUCERS[name][0]], os.path.join(HERE, "producers.py"), name, broker.bootstrap, "bench",
                str(count), str(size)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    finally:
        broker.stop()
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit("%s failed (exit %s):\n%s%s" % (name, done.returncode, done.stdout, done.stderr))
    return json.loads(lines[-1])


def ratios(results, names, sizes):
    """
    @return: markdown lines giving each txscales row's records/s over each
        other producer's (their medians), for each size.
    """
    ours = [n for n in names if n.startswith("txscales")]
    others = [n for n in names if not n.startswith("txscales")]
    if not ours or not others:
        return ""
    lines = ["", "| ratio | " + " | ".join("%d B" % (s,) for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for mine in ours:
        for other in others:
            cells = ["%.2fx" % (results[mine][str(s)]["median"] / results[other][str(s)]["median"],) for s in sizes]
            lines.append("| %s / %s | %s |" % (mine, other, " | ".join(cells)))
    return "\n".join(lines) + "\n"


def markdown(results, names, sizes):
    head = "| producer | " + " | ".join("%d B records/s | %d B CPU us/record" % (s, s) for s in sizes) + " |"
    rows = [head, "|---" * (2 * len(sizes) + 1) + "|"]
    for name in names:
        cells = []
        for s in sizes:
            figures = results[name][str(s)]
            cells += ["{:,.0f}".format(figures["median"]), "%.1f" % (figures["cpuMicrosecondsPerRecord"],)]
        rows.append("| %s | %s |" % (name, " | ".join(cells)))
    memory = [(name, s, results[name][str(s)]["memory"]) for name in names for s in sizes
              if "memory" in results[name][str(s)]]
    if memory:
        rows += ["", "Memory held by records sent and not yet acknowledged (all sent within one turn of the "
                 "event loop, before the broker could answer), per record: Python's allocations (tracemalloc) "
                 "and the process's RSS growth.", "",
                 "| producer | records buffered | value size | traced bytes/record | RSS bytes/record |",
                 "|---|---|---|---|---|"]
        for name, s, m in memory:
            rows.append("| %s | {:,} | %d B | %.0f | %.0f |".format(m["records"])
                        % (name, s, m["tracedBytesPerRecord"], m["rssBytesPerRecord"]))
    return "\n".join(rows) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--producers", default=",".join(PRODUCERS), help="comma-separated (default: all)")
    parser.add_argument("--sizes", default="100,1024", help="value sizes in bytes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=None,
                        help="records per measurement (default: 100,000 up to 256 B, else 50,000)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one measurement may take")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
    args = parser.parse_args()
    names = [n for n in args.producers.split(",") if n]
    unknown = [n for n in names if n not in PRODUCERS]
    if unknown:
        parser.error("unknown producers %s (known: %s)" % (", ".join(unknown), ", ".join(PRODUCERS)))
    sizes = [int(s) for s in args.sizes.split(",")]

    results = {name: {} for name in names}
    for size in sizes:
        count = args.count or (100000 if size <= 256 else 50000)
        runs = {name: [] for name in names}
        cpu = {name: [] for name in names}
        memory = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                result = runOnce(name, count, size, args.timeout)
                runs[name].append(result["recordsPerSecond"])
                cpu[name].append(result["cpuMicrosecondsPerRecord"])
                if "memory" in result:
                    memory[name].append(result["memory"])
                print("kafka-bench: %d B, round %d, %s: %.0f records/s" % (size, r + 1, name, runs[name][-1]),
                      flush=True)
        for name in names:
            results[name][str(size)] = {
                "count": count,
                "runs": runs[name],
                "median": statistics.median(runs[name]),
                "cpuMicrosecondsPerRecord": statistics.median(cpu[name]),
            }
            if memory[name]:
                results[name][str(size)]["memory"] = {
                    "records": memory[name][0]["records"],
                    "runs": memory[name],
                    "tracedBytesPerRecord": statistics.median(m["tracedBytesPerRecord"] for m in memory[name]),
                    "rssBytesPerRecord": statistics.median(m["rssBytesPerRecord"] for m in memory[name]),
                }

    table = markdown(results, names, sizes) + ratios(results, names, sizes)
    print(table, end="")
    report = {
        "settings": dict(SETTINGS, warmup=WARMUP, rounds=args.rounds, partitions=1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "tansu": subprocess.run([TANSU, "--version"], capture_output=True, text=True).stdout.strip(),
        "results": results,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "kafka.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(args.out, "kafka.md"), "w") as f:
        f.write("Kafka producers against Tansu (%s): acks=all, linger 5 ms, no compression, one partition, "
                "median of %d rounds whose order alternates; no idempotence, except txscales' default row "
                "(idempotence on, up to maxInFlight=5 batches of a partition in flight).\n\n%s"
                % (report["tansu"], args.rounds, table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
