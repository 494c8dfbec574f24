#!/usr/bin/env python3
"""Starts moto's server (S3 + DynamoDB and the rest) on 127.0.0.1 for the lava-boot tests.

    moto_launch.py [--auth off|on] [--port 0] [--watch-stdin] [--verbose]

Prints, when ready to serve:
    KEYS <access_key_id> <secret_access_key>     (only with --auth on)
    PORT <n>
then runs until SIGTERM (or, with --watch-stdin, until its stdin reaches EOF, so a test
process that dies cannot leave the server behind).

--auth on: every request must carry a valid SigV4 signature made with the printed keys
(an IAM user with an allow-all inline policy); a wrong secret gets 403, and so does an
unsigned S3 request (an unsigned DynamoDB one gets 400 MissingAuthenticationTokenException).

Moto checks signatures against the request URL as werkzeug rebuilds it, which decodes
`%2F` and most other reserved characters in the query: the launcher makes that URL the raw
request target, so what moto checks is what the client signed (see keep_raw_request_url).

Test hook (not a moto API, never signed): POST /__seed__ with a JSON body
    {"calls": [{"service": "s3", "operation": "put_object",
                "params": {"Bucket": "b", "Key": "k"}, "body_base64": "..."}, ...]}
runs each call with boto3 against this server (signed with the keys in auth mode) and
answers {"results": [...]} (bytes and streams as base64, datetimes as ISO 8601); a failing
call answers 400 {"error": "...", "index": i}.
"""
import argparse
import base64
import datetime
import json
import logging
import os
import signal
import sys
import threading

import peer_common

ALLOW_ALL = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
})
REGION = "us-east-1"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--auth", choices=["on", "off"], default="off")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--watch-stdin", action="store_true",
                        help="exit when stdin reaches EOF (the parent died or closed it)")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    return parser.parse_args()


watch_stdin = peer_common.watch_stdin


def keep_raw_request_url():
    """Makes moto see the request URL as it came on the request line.

    Moto checks a SigV4 signature against flask's `request.url`, which werkzeug rebuilds and
    passes through `uri_to_iri`: that decodes `%2F` (and every other reserved character but
    `&=+#`) in the query, so a correctly signed `ListObjectsV2?prefix=_dist_%2Fpkg%2F` is
    refused. Restoring `QUERY_STRING` in the WSGI environ is not enough (the decoding happens
    after); the URL itself must be the raw one.
    """
    import flask

    def raw_url(request):
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
        if not raw:
            return request.base_url + ("?" + request.query_string.decode("latin-1") if request.query_string else "")
        if isinstance(raw, bytes):
            raw = raw.decode("latin-1")
        if "://" in raw:  # absolute-form request target (a proxy request)
            return raw
        return f"{request.scheme}://{request.host}{raw}"

    flask.Request.url = property(raw_url)


class RequireSignature:
    """WSGI middleware for --auth on: a request with no signature at all is refused the way AWS
    refuses it (moto itself answers 500, failing on the missing Authorization header)."""

    def __init__(self, app):
        self.app = app
        self.enabled = False

    def __call__(self, environ, start_response):
        signed = "HTTP_AUTHORIZATION" in environ or "X-Amz-Signature=" in environ.get("QUERY_STRING", "")
        path = environ.get("PATH_INFO", "")
        if not self.enabled or signed or path.startswith("/moto-api"):
            return self.app(environ, start_response)
        if "HTTP_X_AMZ_TARGET" in environ:
            status = "400 Bad Request"
            content_type = "application/x-amz-json-1.0"
            body = (b'{"__type":"com.amazon.coral.service#MissingAuthenticationTokenException",'
                    b'"message":"Request is missing Authentication Token"}')
        else:
            status = "403 Forbidden"
            content_type = "application/xml"
            body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                    b'<Message>Access Denied</Message><RequestId>moto-launch</RequestId></Error>')
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


class SeedHook:
    """WSGI middleware answering POST /__seed__ by running boto3 calls against this server."""

    def __init__(self, app):
        self.app = app
        self.endpoint = None
        self.keys = ("testing", "testing")
        self._clients = {}
        self._lock = threading.Lock()

    def client(self, service):
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                import boto3
                from botocore.config import Config
                session = boto3.session.Session(
                    aws_access_key_id=self.keys[0], aws_secret_access_key=self.keys[1], region_name=REGION)
                config = Config(retries={"max_attempts": 1, "mode": "standard"},
                                s3={"addressing_style": "path"})
                client = session.client(service, endpoint_url=self.endpoint, config=config)
                self._clients[service] = client
            return client

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/__seed__":
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return self.answer(start_response, 405, {"error": "POST only"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except (ValueError, KeyError) as error:
            return self.answer(start_response, 400, {"error": f"bad JSON: {error}"})
        results = []
        for index, call in enumerate(request.get("calls", [])):
            try:
                params = dict(call.get("params") or {})
                if "body_base64" in call:
                    params["Body"] = base64.b64decode(call["body_base64"])
                method = getattr(self.client(call["service"]), call["operation"])
                results.append(plain(method(**params)))
            except Exception as error:  # reported to the test, which fails with it
                return self.answer(start_response, 400, {"error": f"{type(error).__name__}: {error}",
                                                          "index": index, "results": results})
        return self.answer(start_response, 200, {"results": results})

    @staticmethod
    def answer(start_response, status, document):
        body = json.dumps(document).encode()
        reason = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed"}[status]
        start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(body)))])
        return [body]


def plain(value):
    """A boto3 result as plain JSON values."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "read"):
        return base64.b64encode(value.read()).decode()
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # Decimal, sets of scalars


def create_auth_user(hook):
    """Makes an IAM user with an allow-all policy and an access key, while auth is still off."""
    iam = hook.client("iam")
    iam.create_user(UserName="lava-test")
    iam.put_user_policy(UserName="lava-test", PolicyName="allow-all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName="lava-test")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def main():
    args = parse_args()
    if args.watch_stdin:
        watch_stdin()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # Moto must never try a real AWS endpoint, and its fake credentials must not leak in.
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB"):
        os.environ.pop(name, None)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    # Auth starts off whatever the mode; --auth on turns it on once the IAM user exists.
    os.environ.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)

    from werkzeug.serving import make_server
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    keep_raw_request_url()
    guard = RequireSignature(DomainDispatcherApplication(create_backend_app))
    hook = SeedHook(guard)
    server = make_server(args.host, args.port, hook, threaded=True)
    port = server.server_port
    hook.endpoint = f"http://{args.host}:{port}"
    threading.Thread(target=server.serve_forever, daemon=True, name="moto").start()

    lines = []
    if args.auth == "on":
        hook.keys = create_auth_user(hook)
        with hook._lock:
            hook._clients.clear()
        # From now on every request is checked (the count of free requests is zero).
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0
        guard.enabled = True
        lines.append(f"KEYS {hook.keys[0]} {hook.keys[1]}")
    lines.append(f"PORT {port}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    # Nothing else may go to the announcement pipe (nobody reads it any more).
    os.dup2(2, 1)
    threading.Event().wait()


if __name__ == "__main__":
    main()
