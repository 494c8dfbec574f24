#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 reverse proxy for the lava-boot tests.

    fault_proxy.py --upstream http://127.0.0.1:PORT [--port 0] [--watch-stdin]

Prints `PORT <n>` when ready. Forwards each request's line (method, raw path and query, byte
for byte) and headers unchanged (Host too, so SigV4 signatures stay valid), relays request
bodies (Content-Length or chunked) and streams responses back, keeping both connections
alive. Runs until SIGTERM (or stdin EOF with --watch-stdin).

Control (never forwarded):
  POST /__fault__  JSON, each key optional, later posts add to earlier ones:
    {"cut_get_after_bytes": N, "cut_count": K}
        the next K GET responses with status 200/206 and a Content-Length above N: send the
        headers (real Content-Length) and N body bytes, then close the connection.
    {"throttle_target": "DynamoDB_20120810.GetItem", "throttle_count": K}
        the next K requests whose X-Amz-Target equals the target get DynamoDB's 400
        ThrottlingException.
    {"lose_target": "DynamoDB_20120810.UpdateItem", "lose_count": K}
        the next K requests whose X-Amz-Target equals the target are forwarded and applied
        upstream, but the client gets DynamoDB's 500 InternalServerError instead of the answer
        (a response lost after the write happened).
    {"status_count": K, "status": 503, "path_prefix": "/", "method": "GET",
     "code": "SlowDown", "message": "Please reduce your request rate."}
        the next K requests (any method unless "method"; raw path starting with the prefix)
        get that status with an S3 XML error body.
    {"drop_count": K, "path_prefix": "/"}
        the next K requests are read and the connection is closed with no response.
    {"reset": true}
        forget every rule and counter (applied first).
  GET /__fault__  the counters as JSON:
    {"requests": {"GET": n, ...}, "requests_total": n, "ranged_gets": n,
     "last_range": "bytes=..." | null, "last_if_match": "..." | null,
     "faults": {"cut": n, "throttle": n, "status": n, "drop": n, "lose": n},
     "rules": {...what is still armed...}, "log": [{"method", "path", "target", "range"}, ...]}
"""
import argparse
import http.client
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import peer_common

THROTTLE_BODY = (b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
                 b'"message":"Rate exceeded"}')
LOST_BODY = (b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",'
             b'"message":"Internal server error"}')
LOG_LIMIT = 2000


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.cut_after = None
        self.cut_count = 0
        self.throttle_target = None
        self.throttle_count = 0
        self.lose_target = None
        self.lose_count = 0
        self.status_rule = None
        self.status_count = 0
        self.drop_prefix = "/"
        self.drop_count = 0
        self.requests = {}
        self.requests_total = 0
        self.ranged_gets = 0
        self.last_range = None
        self.last_if_match = None
        self.faults = {"cut": 0, "throttle": 0, "status": 0, "drop": 0, "lose": 0}
        self.log = []

    def configure(self, rules):
        if rules.get("reset"):
            self.reset()
        if "cut_get_after_bytes" in rules or "cut_count" in rules:
            self.cut_after = int(rules.get("cut_get_after_bytes", self.cut_after or 0))
            self.cut_count = int(rules.get("cut_count", 1))
        if "throttle_target" in rules or "throttle_count" in rules:
            self.throttle_target = rules.get("throttle_target", self.throttle_target)
            self.throttle_count = int(rules.get("throttle_count", 1))
        if "lose_target" in rules or "lose_count" in rules:
            self.lose_target = rules.get("lose_target", self.lose_target)
            self.lose_count = int(rules.get("lose_count", 1))
        if "status_count" in rules or "status" in rules:
            status = int(rules.get("status", 503))
            self.status_rule = {
                "status": status,
                "path_prefix": rules.get("path_prefix", "/"),
                "method": rules.get("method"),
                "code": rules.get("code", "SlowDown" if status == 503 else "InternalError"),
                "message": rules.get("message", "Please reduce your request rate." if status == 503
                                     else "We encountered an internal error. Please try again."),
            }
            self.status_count = int(rules.get("status_count", 1))
        if "drop_count" in rules:
            self.drop_count = int(rules["drop_count"])
            self.drop_prefix = rules.get("path_prefix", "/")

    def snapshot(self):
        return {
            "requests": dict(self.requests),
            "requests_total": self.requests_total,
            "ranged_gets": self.ranged_gets,
            "last_range": self.last_range,
            "last_if_match": self.last_if_match,
            "faults": dict(self.faults),
            "rules": {
                "cut_get_after_bytes": self.cut_after, "cut_count": self.cut_count,
                "throttle_target": self.throttle_target, "throttle_count": self.throttle_count,
                "lose_target": self.lose_target, "lose_count": self.lose_count,
                "status": self.status_rule, "status_count": self.status_count,
                "drop_count": self.drop_count,
            },
            "log": list(self.log),
        }


STATE = State()
UPSTREAM = None  # (host, port)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lava-fault-proxy"
    upstream = None  # this connection's http.client.HTTPConnection

    def log_message(self, format, *args):  # quiet: the counters tell the story
        pass

    # BaseHTTPRequestHandler answers "Expect: 100-continue" itself; forward the header anyway
    # (http.client skips an upstream 100).

    def do_control(self):
        if self.command == "POST":
            try:
                rules = json.loads(self.read_body() or b"{}")
                with STATE.lock:
                    STATE.configure(rules)
                    answer = STATE.snapshot()
            except (ValueError, TypeError) as error:
                return self.reply(400, "application/json", json.dumps({"error": str(error)}).encode())
        elif self.command == "GET":
            with STATE.lock:
                answer = STATE.snapshot()
        else:
            return self.reply(405, "text/plain", b"GET or POST\n")
        self.reply(200, "application/json", json.dumps(answer).encode())

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, BrokenPipeError):
            self.close_connection = True

    def __getattr__(self, name):
        # Every method (GET, PUT, HEAD, ...) goes through one path.
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def dispatch(self):
        if urlsplit(self.path).path == "/__fault__":
            return self.do_control()
        method = self.command
        target = self.headers.get("X-Amz-Target")
        with STATE.lock:
            STATE.requests[method] = STATE.requests.get(method, 0) + 1
            STATE.requests_total += 1
            if method == "GET" and self.headers.get("Range") is not None:
                STATE.ranged_gets += 1
                STATE.last_range = self.headers.get("Range")
                STATE.last_if_match = self.headers.get("If-Match")
            if len(STATE.log) < LOG_LIMIT:
                STATE.log.append({"method": method, "path": self.path, "target": target,
                                  "range": self.headers.get("Range")})
            fault = self.choose_fault(method, target)
        if fault == "drop":
            self.read_body()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "throttle":
            self.read_body()
            return self.reply(400, "application/x-amz-json-1.0", THROTTLE_BODY)
        if isinstance(fault, dict):
            self.read_body()
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{fault["code"]}</Code>'
                    f'<Message>{fault["message"]}</Message><RequestId>fault-proxy</RequestId></Error>').encode()
            return self.reply(fault["status"], "application/xml", body)
        self.forward(method, lose=fault == "lose")

    def choose_fault(self, method, target):
        """Under STATE.lock: the fault this request gets, counting it as served."""
        path = self.path
        if STATE.drop_count > 0 and path.startswith(STATE.drop_prefix):
            STATE.drop_count -= 1
            STATE.faults["drop"] += 1
            return "drop"
        if STATE.throttle_count > 0 and target is not None and target == STATE.throttle_target:
            STATE.throttle_count -= 1
            STATE.faults["throttle"] += 1
            return "throttle"
        if STATE.lose_count > 0 and target is not None and target == STATE.lose_target:
            STATE.lose_count -= 1
            STATE.faults["lose"] += 1
            return "lose"
        rule = STATE.status_rule
        if (STATE.status_count > 0 and rule and path.startswith(rule["path_prefix"])
                and (rule["method"] is None or rule["method"] == method)):
            STATE.status_count -= 1
            STATE.faults["status"] += 1
            return rule
        return None

    def read_body(self):
        """The whole request body, de-chunked (for requests answered here)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self.raw_chunks(decode=True))
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def raw_chunks(self, decode=False):
        """The chunked request body, chunk by chunk, raw (framing kept) or decoded."""
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                trailer = line
                while True:
                    more = self.rfile.readline(65537)
                    trailer += more
                    if more in (b"\r\n", b"\n", b""):
                        break
                if not decode:
                    yield trailer
                return
            data = self.rfile.read(size)
            crlf = self.rfile.readline(3)
            yield data if decode else line + data + crlf

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def connect_upstream(self, fresh=False):
        if fresh and self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if self.upstream is None:
            self.upstream = http.client.HTTPConnection(UPSTREAM[0], UPSTREAM[1], timeout=120)
        return self.upstream

    def send_upstream(self, method, fresh):
        connection = self.connect_upstream(fresh)
        connection.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.raw_items():
            connection.putheader(name, value)
        connection.endheaders()

    def forward(self, method, lose=False):
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        length = int(self.headers.get("Content-Length") or 0)
        # The request head is retried once on a fresh connection if a kept-alive one went stale.
        try:
            self.send_upstream(method, fresh=False)
        except OSError:
            try:
                self.send_upstream(method, fresh=True)
            except OSError as error:
                self.read_body()
                self.connect_upstream(fresh=True)
                self.close_connection = True
                return self.reply(502, "text/plain", f"upstream unreachable: {error}\n".encode())
        connection = self.upstream
        if chunked:
            for piece in self.raw_chunks():
                connection.send(piece)
        else:
            left = length
            while left > 0:
                data = self.rfile.read(min(left, 65536))
                if not data:
                    raise ConnectionError("client closed mid-body")
                connection.send(data)
                left -= len(data)
        try:
            response = connection.getresponse()
        except (ConnectionError, http.client.HTTPException):
            self.connect_upstream(fresh=True)
            self.close_connection = True
            return self.reply(502, "text/plain", b"upstream failed\n")
        if lose:
            response.read()
            return self.reply(500, "application/x-amz-json-1.0", LOST_BODY)
        self.relay(method, response)

    def relay(self, method, response):
        # Connection and Keep-Alive are hop-by-hop: moto (werkzeug's dev server) closes every
        # connection, but the client's connection to the proxy stays open.
        headers = [(name, value) for name, value in response.msg.raw_items()
                   if name.lower() not in ("connection", "keep-alive")]
        header_names = {name.lower() for name, _ in headers}
        upstream_chunked = response.chunked
        length = response.length  # None when chunked or read-to-close
        with STATE.lock:
            cut = (method == "GET" and response.status in (200, 206) and STATE.cut_count > 0
                   and length is not None and STATE.cut_after is not None and length > STATE.cut_after)
            if cut:
                STATE.cut_count -= 1
                STATE.faults["cut"] += 1
                cut_after = STATE.cut_after
        self.send_response_only(response.status, response.reason)
        for name, value in headers:
            self.send_header(name, value)
        if method != "HEAD" and length is None and not upstream_chunked and "content-length" not in header_names:
            self.close_connection = True  # read-to-close body: end it the same way
        self.end_headers()
        if cut:
            sent = 0
            while sent < cut_after:
                data = response.read(min(cut_after - sent, 65536))
                if not data:
                    break
                self.wfile.write(data)
                sent += len(data)
            self.wfile.flush()
            response.close()
            self.connect_upstream(fresh=True)  # the upstream body was not read to its end
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        while True:
            data = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
            if not data:
                break
            if upstream_chunked:
                self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                self.wfile.write(data)
            self.wfile.flush()
        if upstream_chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        if response.will_close:
            self.connect_upstream(fresh=True)

    def finish(self):
        try:
            super().finish()
        finally:
            if self.upstream is not None:
                self.upstream.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--watch-stdin", action="store_true")
    args = parser.parse_args()
    upstream = urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname or not upstream.port:
        parser.error("--upstream must be http://HOST:PORT")
    global UPSTREAM
    UPSTREAM = (upstream.hostname, upstream.port)
    peer_common.serve(Server((args.host, args.port), Handler), args.watch_stdin)


if __name__ == "__main__":
    main()
