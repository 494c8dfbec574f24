#!/usr/bin/env python3
"""A fake EC2 instance metadata service (IMDSv2 only) for the lava-boot tests.

    imds_fake.py [--region us-east-1] [--instance-id i-0123456789abcdef0] [--role lava-worker]
                 [--credential-lifetime 3600] [--access-key-id K --secret-access-key S [--token T]]
                 [--port 0] [--watch-stdin]

Prints `PORT <n>` when ready; runs until SIGTERM (or stdin EOF with --watch-stdin).

  PUT /latest/api/token  needs X-aws-ec2-metadata-token-ttl-seconds (integer 1..21600, else
      400) and answers a token valid that many seconds; a PUT carrying X-Forwarded-For gets
      403, as on EC2.
  GET /latest/...        needs X-aws-ec2-metadata-token with a live token, else 401.
      meta-data/placement/region, meta-data/instance-id,
      meta-data/iam/security-credentials/        the role name
      meta-data/iam/security-credentials/<role>  {"Code":"Success","LastUpdated":...,
          "Type":"AWS-HMAC","AccessKeyId":...,"SecretAccessKey":...,"Token":...,
          "Expiration":"YYYY-MM-DDTHH:MM:SSZ"}; once expired, the next fetch gets new keys.
      any path added by the control endpoint; anything else 404.

Control (no token needed):
  POST /__control__  JSON, each key optional:
    {"fail_next": K, "status": 500}   the next K requests (token PUT or GET) get that status
    {"credentials": {"AccessKeyId":..., "SecretAccessKey":..., "Token":...}}
                                      served from the next fetch on, for one lifetime
    {"credential_lifetime": SECONDS}  for credentials issued from now on
    {"rotate": false}                 on expiry keep the same keys (new Expiration only)
    {"expire_now": true}              the current credentials are expired: the next fetch rotates
    {"paths": {"/latest/meta-data/autoscaling/target-lifecycle-state": "InService", "/x": null}}
                                      add or change paths; null removes one (then 404)
    {"region": ..., "instance_id": ..., "role": ...}
    {"reset_counters": true}
  GET /__control__  counters: {"token_puts", "token_ttls": [...], "bad_token_puts",
    "gets_with_token", "gets_without_token", "unauthorized", "failures_served",
    "credential_fetches", "access_keys_served": [...], "requests": [{"method", "path"}, ...]}
"""
import argparse
import datetime
import json
import secrets
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import peer_common

MAX_TTL = 21600
LOG_LIMIT = 2000


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_text(alphabet, length):
    return "".join(secrets.choice(alphabet) for _ in range(length))


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.region = args.region
        self.instance_id = args.instance_id
        self.role = args.role
        self.lifetime = args.credential_lifetime
        self.rotate = True
        self.tokens = {}  # token -> expiry (monotonic)
        self.paths = {}
        self.fail_count = 0
        self.fail_status = 500
        self.credentials = None  # current: dict with AccessKeyId, ..., "expires" (wall clock)
        self.pending = None      # set by control or the command line: served from the next fetch
        if args.access_key_id:
            self.pending = {"AccessKeyId": args.access_key_id, "SecretAccessKey": args.secret_access_key or "",
                            "Token": args.token or random_text(string.ascii_letters + string.digits, 120)}
        self.reset_counters()

    def reset_counters(self):
        self.counters = {
            "token_puts": 0, "token_ttls": [], "bad_token_puts": 0,
            "gets_with_token": 0, "gets_without_token": 0, "unauthorized": 0,
            "failures_served": 0, "credential_fetches": 0, "access_keys_served": [], "requests": [],
        }

    def issue(self, keys=None):
        now = time.time()
        if keys is None:
            keys = {
                "AccessKeyId": "ASIA" + random_text(string.ascii_uppercase + "234567", 16),
                "SecretAccessKey": random_text(string.ascii_letters + string.digits + "/+", 40),
                "Token": random_text(string.ascii_letters + string.digits + "/+=", 160),
            }
        self.credentials = dict(keys, issued=now, expires=now + self.lifetime)

    def current_credentials(self):
        """Under lock: the credentials to serve now, rotating expired ones."""
        now = time.time()
        if self.pending is not None:
            self.issue(self.pending)
            self.pending = None
        elif self.credentials is None:
            self.issue()
        elif now >= self.credentials["expires"]:
            if self.rotate:
                self.issue()
            else:
                self.issue({key: self.credentials[key] for key in ("AccessKeyId", "SecretAccessKey", "Token")})
        credentials = self.credentials
        return {
            "Code": "Success",
            "LastUpdated": iso(credentials["issued"]),
            "Type": "AWS-HMAC",
            "AccessKeyId": credentials["AccessKeyId"],
            "SecretAccessKey": credentials["SecretAccessKey"],
            "Token": credentials["Token"],
            "Expiration": iso(credentials["expires"]),
        }

    def control(self, request):
        if request.get("reset_counters"):
            self.reset_counters()
        if "fail_next" in request:
            self.fail_count = int(request["fail_next"])
            self.fail_status = int(request.get("status", 500))
        if "credential_lifetime" in request:
            self.lifetime = float(request["credential_lifetime"])
        if "rotate" in request:
            self.rotate = bool(request["rotate"])
        if "credentials" in request:
            given = request["credentials"]
            self.pending = {"AccessKeyId": given["AccessKeyId"], "SecretAccessKey": given["SecretAccessKey"],
                            "Token": given.get("Token") or random_text(string.ascii_letters + string.digits, 120)}
        if request.get("expire_now") and self.credentials is not None:
            self.credentials["expires"] = time.time() - 1
        for key in ("region", "instance_id", "role"):
            if key in request:
                setattr(self, key, request[key])
        for path, value in (request.get("paths") or {}).items():
            if value is None:
                self.paths.pop(path, None)
            else:
                self.paths[path] = value if isinstance(value, str) else json.dumps(value)

    def snapshot(self):
        return json.loads(json.dumps(self.counters))


STATE = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"

    def log_message(self, format, *args):
        pass

    def reply(self, status, body=b"", content_type="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def log_request_seen(self):
        if len(STATE.counters["requests"]) < LOG_LIMIT:
            STATE.counters["requests"].append({"method": self.command, "path": self.path})

    def injected_failure(self):
        """Under lock: the status to fail this request with, if one is armed."""
        if STATE.fail_count > 0:
            STATE.fail_count -= 1
            STATE.counters["failures_served"] += 1
            return STATE.fail_status
        return None

    def do_PUT(self):
        path = urlsplit(self.path).path
        self.read_body()
        if path == "/__control__":
            return self.reply(405, "GET or POST\n")
        with STATE.lock:
            self.log_request_seen()
            failure = self.injected_failure()
            if failure is None and path == "/latest/api/token":
                STATE.counters["token_puts"] += 1
                raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                try:
                    ttl = int(raw) if raw is not None and raw.strip().isdigit() else None
                except ValueError:
                    ttl = None
                if ttl is not None:
                    STATE.counters["token_ttls"].append(ttl)
                if self.headers.get("X-Forwarded-For") is not None:
                    STATE.counters["bad_token_puts"] += 1
                    answer = (403, "Forbidden\n")
                elif ttl is None or not 1 <= ttl <= MAX_TTL:
                    STATE.counters["bad_token_puts"] += 1
                    answer = (400, "Bad Request\n")
                else:
                    token = "AQAEA" + secrets.token_urlsafe(42)
                    STATE.tokens[token] = time.monotonic() + ttl
                    answer = (200, token, [("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])
            elif failure is None:
                answer = (404, "Not Found\n")
        if failure is not None:
            return self.reply(failure, f"injected failure {failure}\n")
        self.reply(answer[0], answer[1], headers=answer[2] if len(answer) > 2 else ())

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self.read_body()
        if path != "/__control__":
            with STATE.lock:
                self.log_request_seen()
                failure = self.injected_failure()
            return self.reply(failure or 405, "Method Not Allowed\n")
        try:
            request = json.loads(body or b"{}")
            with STATE.lock:
                STATE.control(request)
                answer = STATE.snapshot()
        except (ValueError, TypeError, KeyError) as error:
            return self.reply(400, json.dumps({"error": str(error)}), "application/json")
        self.reply(200, json.dumps(answer), "application/json")

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/__control__":
            with STATE.lock:
                answer = STATE.snapshot()
            return self.reply(200, json.dumps(answer), "application/json")
        with STATE.lock:
            self.log_request_seen()
            failure = self.injected_failure()
            if failure is None:
                answer = self.serve(path)
        if failure is not None:
            return self.reply(failure, f"injected failure {failure}\n")
        self.reply(*answer)

    def serve(self, path):
        """Under lock: (status, body[, content type]) for a metadata GET."""
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token is None:
            STATE.counters["gets_without_token"] += 1
            STATE.counters["unauthorized"] += 1
            return (401, "Unauthorized\n")
        STATE.counters["gets_with_token"] += 1
        now = time.monotonic()
        for known, expiry in list(STATE.tokens.items()):
            if expiry <= now:
                del STATE.tokens[known]
        if token not in STATE.tokens:
            STATE.counters["unauthorized"] += 1
            return (401, "Unauthorized\n")
        if path in STATE.paths:
            return (200, STATE.paths[path])
        credentials_base = "/latest/meta-data/iam/security-credentials"
        if path == "/latest/meta-data/placement/region":
            return (200, STATE.region)
        if path == "/latest/meta-data/instance-id":
            return (200, STATE.instance_id)
        if path in (credentials_base, credentials_base + "/"):
            return (200, STATE.role) if STATE.role else (404, "Not Found\n")
        if STATE.role and path in (f"{credentials_base}/{STATE.role}", f"{credentials_base}/{STATE.role}/"):
            document = STATE.current_credentials()
            STATE.counters["credential_fetches"] += 1
            STATE.counters["access_keys_served"].append(document["AccessKeyId"])
            return (200, json.dumps(document, indent=2), "text/plain")
        return (404, "Not Found\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--instance-id", default="i-0123456789abcdef0")
    parser.add_argument("--role", default="lava-worker")
    parser.add_argument("--credential-lifetime", type=float, default=3600)
    parser.add_argument("--access-key-id")
    parser.add_argument("--secret-access-key")
    parser.add_argument("--token")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--watch-stdin", action="store_true")
    args = parser.parse_args()
    global STATE
    STATE = State(args)
    peer_common.serve(Server((args.host, args.port), Handler), args.watch_stdin)


if __name__ == "__main__":
    main()
