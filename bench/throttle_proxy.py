#!/usr/bin/env python3
"""A reverse proxy that throttles DynamoDB GetItem like a provisioned table (bench/fleet-plan.sh).

    throttle_proxy.py --upstream http://127.0.0.1:PORT [--rate 6] [--burst 6] [--port 0]

Prints `PORT <n>` when ready. Forwards every request unchanged (request line, headers with Host,
so SigV4 stays valid, and body) to the upstream and relays the answer, keeping the client's
connection alive. A request whose X-Amz-Target is DynamoDB_20120810.GetItem first takes a token
from a bucket refilled at --rate tokens/s holding at most --burst (3 RCU = 6 eventually
consistent reads/s); with none left it gets DynamoDB's 400 ProvisionedThroughputExceededException
at once, as the real table answers. A small burst keeps the limit rate-bound (DynamoDB banks up to
300 s of unused capacity, which would hide the limit for a short bench).

Control (never forwarded):
  GET  /__stats__  {"getitem": n, "admitted": n, "throttled": n, "requests": n}
  POST /__reset__  zero the counters and refill the bucket; answers the counters before reset.
Runs until SIGTERM.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

GETITEM = "DynamoDB_20120810.GetItem"
THROTTLED = (b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
             b'"message":"The level of configured provisioned throughput for the table was exceeded."}')
HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "content-length")


class Bucket:
    """Token bucket plus the counters, under one lock."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.tokens, self.last = float(self.burst), time.monotonic()
        self.counts = {"getitem": 0, "admitted": 0, "throttled": 0, "requests": 0}

    def admit(self, target):
        with self.lock:
            self.counts["requests"] += 1
            if target != GETITEM:
                return True
            self.counts["getitem"] += 1
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                self.counts["admitted"] += 1
                return True
            self.counts["throttled"] += 1
            return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the client
    server_version = "lava-throttle-proxy"
    bucket = upstream_address = None  # set in main

    def log_message(self, format, *args):  # quiet: the counters tell the story
        pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout):
            self.close_connection = True

    def __getattr__(self, name):  # every method (GET, PUT, POST, HEAD, ...) takes one path
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def body(self):
        """The request body, de-chunked (boto3 and lava-boot send Content-Length; S3 may chunk)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, content_type, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def dispatch(self):
        path = urlsplit(self.path).path
        if path == "/__stats__" or path == "/__reset__":
            self.body()
            with self.bucket.lock:
                answer = json.dumps(self.bucket.counts).encode()
                if path == "/__reset__" and self.command == "POST":
                    self.bucket.reset()
            return self.reply(200, "application/json", answer)
        data = self.body()
        if not self.bucket.admit(self.headers.get("X-Amz-Target")):
            return self.reply(400, "application/x-amz-json-1.0", THROTTLED,
                              [("x-amzn-RequestId", "throttle-proxy")])
        # One upstream connection per request: moto (werkzeug) closes each one anyway.
        # Hop-by-hop headers and framing are redone here (the body is already read: no Expect).
        headers = [(name, value) for name, value in self.headers.raw_items()
                   if name.lower() not in HOP_BY_HOP + ("expect",)]
        headers.append(("Content-Length", str(len(data))))
        upstream = http.client.HTTPConnection(*self.upstream_address, timeout=300)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                upstream.putheader(name, value)
            upstream.endheaders(data)
            response = upstream.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            return self.reply(502, "text/plain", f"upstream failed: {error}\n".encode())
        finally:
            upstream.close()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # hundreds of clients connect in the same instant


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT")
    parser.add_argument("--rate", type=float, default=6.0, help="GetItem tokens per second")
    parser.add_argument("--burst", type=float, default=6.0, help="bucket size")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    upstream = urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname or not upstream.port:
        parser.error("--upstream must be http://HOST:PORT")
    Handler.upstream_address = (upstream.hostname, upstream.port)
    Handler.bucket = Bucket(args.rate, args.burst)
    server = Server((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"PORT {server.server_address[1]}", flush=True)
    os.dup2(2, 1)  # the caller reads stdout for the port only
    server.serve_forever()


if __name__ == "__main__":
    main()
