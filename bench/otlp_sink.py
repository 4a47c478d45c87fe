"""An OTLP/HTTP sink for the ``hub-otel`` benchmark server: accepts ``POST /v1/traces`` and
discards the body (no decoding, so the sink's own CPU stays small and is not counted: the
harness measures the server's and PostgreSQL's CPU). Counts requests and bytes, printed on exit.

    python -m bench.otlp_sink --port 18399
"""

from __future__ import annotations

import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

received = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        received["requests"] += 1
        received["bytes"] += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Sink)

    def stop(signum: int, frame: FrameType | None) -> None:
        print(f"otlp sink: {received['requests']} exports, {received['bytes']:,} bytes", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"otlp sink on port {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
