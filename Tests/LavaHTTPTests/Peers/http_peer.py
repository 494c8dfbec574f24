#!/usr/bin/env python3
"""Loopback HTTP/1.1 peer for the LavaHTTP tests (standard library only).

Listens on 127.0.0.1, port 0, and prints `PORT <n>` on stdout (with --watch-stdin it exits at stdin's EOF). With --tls CERT KEY it
speaks HTTPS. Every response carries X-Connection: the number of the TCP connection it went
out on (1, 2, ...), so a test can tell a reused connection from a new one.

Routes:
  /hello                  200 "hello world"
  /echo                   the request body back; X-Method, X-Received-Length
  /headers                the request's header lines as the body ("Name: value\\n" each)
  /repeated               X-Multi twice (different case) and Set-Cookie twice
  /missing                404 with a body
  /big?size=N             N bytes, byte i = i % 251, with Content-Length
  /cut?size=N&after=M     Content-Length N, then M bytes and the connection closed
  /slow                   Content-Length 1000, 10 bytes, then nothing
  absolute-form target    (a request sent to a proxy) 200 "proxied TARGET"
"""
import http.server
import itertools
import os
import ssl
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

connection_numbers = itertools.count(1)

PERIOD = 251
BLOCK = bytes(i % PERIOD for i in range(PERIOD * 256))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection_number = next(connection_numbers)

    def log_message(self, format, *args):
        pass

    def start(self, status, length, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Connection", str(self.connection_number))
        self.end_headers()

    def reply(self, status, body, headers=()):
        self.start(status, len(body), headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("http://"):
            return self.reply(200, ("proxied " + self.path).encode())
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path
        if path == "/hello":
            self.reply(200, b"hello world", [("Content-Type", "text/plain")])
        elif path == "/echo":
            self.reply(200, body, [("X-Method", self.command), ("X-Received-Length", str(length))])
        elif path == "/headers":
            lines = "".join(f"{name}: {value}\n" for name, value in self.headers.items())
            self.reply(200, lines.encode())
        elif path == "/repeated":
            self.reply(200, b"ok", [("X-Multi", "one"), ("x-multi", "two"),
                                    ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        elif path == "/missing":
            self.reply(404, b"no such thing")
        elif path == "/big":
            size = int(query["size"][0])
            self.start(200, size)
            left = size
            while left > 0:
                piece = BLOCK if left >= len(BLOCK) else BLOCK[:left]
                self.wfile.write(piece)
                left -= len(piece)
        elif path == "/cut":
            size, after = int(query["size"][0]), int(query["after"][0])
            self.start(200, size)
            self.wfile.write(BLOCK[:after])
            self.close_connection = True
        elif path == "/slow":
            self.start(200, 1000)
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            time.sleep(60)
            self.close_connection = True
        else:
            self.reply(404, b"no route")

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client hanging up mid-body is what some tests do on purpose.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)


def watch_stdin():
    """Exit once stdin reaches EOF: the test process that started this peer is gone."""
    def run():
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)
    threading.Thread(target=run, daemon=True).start()


def main():
    arguments = sys.argv[1:]
    if "--watch-stdin" in arguments:
        arguments.remove("--watch-stdin")
        watch_stdin()
    server = Server(("127.0.0.1", 0), Handler)
    if len(arguments) == 3 and arguments[0] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(arguments[1], arguments[2])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
