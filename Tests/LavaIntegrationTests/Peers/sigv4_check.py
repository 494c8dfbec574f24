"""Server-side AWS Signature Version 4 verification (Authorization header form), for the test peers.

    verify(method, path, headers, body, region, service, credentials_for, now=None, max_skew=300,
           normalize=True) -> Verdict

`path` is the request target as received (`/`, `/?a=b`); `headers` a list of (name, value) pairs as
received (duplicates allowed); `body` bytes. `credentials_for(access_key_id, session_token)` answers
the key's secret (str), or a refusal `(code, message)` (e.g. `("InvalidClientTokenId", ...)`).
The verdict: `ok`, `code`/`message`/`status` when refused (an awsQuery error code), `access_key_id`,
`signature_ok`, and `canonical_request`/`string_to_sign` as recomputed (for diagnosis).

Checked, in this order (the first failure is the answer):
  Authorization missing: 403 MissingAuthenticationToken; not `AWS4-HMAC-SHA256 Credential=AKID/DATE/
      REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex`, no X-Amz-Date (`YYYYMMDDTHHMMSSZ`),
      or `host`/`x-amz-date` not among the signed headers: 403 IncompleteSignature;
  a scope with another region or service, or a scope date that is not X-Amz-Date's day:
      403 SignatureDoesNotMatch;
  the key and its session token (X-Amz-Security-Token, signed or not): whatever credentials_for refuses;
  X-Amz-Date more than max_skew seconds from `now` (either way): 400 RequestExpired;
  X-Amz-Content-Sha256, when sent, not the body's hex SHA-256: 403 SignatureDoesNotMatch;
  the signature recomputed (canonical request: method; canonical URI = the received path with dot
      segments and empty segments removed (not with normalize=False, as S3 signs), each byte outside
      A-Za-z0-9-._~/ percent-encoded (so a received `%20` becomes `%2520`, as SDKs sign non-S3 paths);
      the query's pairs decoded, re-encoded and sorted; every signed header lower-cased, its values
      trimmed with inner runs of spaces collapsed, repeats joined by `,`; the signed header list; hex
      SHA-256 of the body) differs: 403 SignatureDoesNotMatch.

The helpers (canonical_uri, canonical_query, canonical_headers, canonical_request, string_to_sign,
signing_key, signature) are the pieces a unit test can hold against the published vectors.
"""
import datetime
import hashlib
import hmac
import re
from urllib.parse import unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$")


class Verdict:
    def __init__(self, ok, code=None, message=None, status=200, access_key_id=None, signature_ok=False,
                 canonical_request=None, string_to_sign=None):
        self.ok = ok
        self.code = code
        self.message = message
        self.status = status
        self.access_key_id = access_key_id
        self.signature_ok = signature_ok
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign

    def __repr__(self):
        return f"Verdict(ok={self.ok}, code={self.code!r}, message={self.message!r}, status={self.status})"


def uri_encode(data, keep_slash=False):
    """Percent-encodes every byte outside the unreserved set (and `/` when keep_slash)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    out = []
    for byte in data:
        if byte in UNRESERVED or (keep_slash and byte == 0x2F):
            out.append(chr(byte))
        else:
            out.append("%%%02X" % byte)
    return "".join(out)


def normalize_path(path):
    """Removes `.`/`..` and empty segments; keeps a trailing slash; `/` for nothing left."""
    segments = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    if not segments:
        return "/"
    trailing = path.endswith("/") or path.endswith("/.") or path.endswith("/..")
    return "/" + "/".join(segments) + ("/" if trailing else "")


def canonical_uri(path, normalize=True):
    """The path as the signer saw it (the received path for a server), normalized, then encoded once."""
    if not path:
        path = "/"
    return uri_encode(normalize_path(path) if normalize else path, keep_slash=True)


def canonical_query(query):
    """The raw query (`a=b&c`) decoded pair by pair, re-encoded, sorted by name then value."""
    pairs = []
    for part in query.split("&") if query else []:
        if part == "":
            continue
        name, _, value = part.partition("=")
        pairs.append((uri_encode(unquote_to_bytes(name)), uri_encode(unquote_to_bytes(value))))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def trim_value(value):
    return " ".join(value.split())


def canonical_headers(headers, signed):
    """`name:value\\n` for each signed name (in the given order); repeats joined by `,`; absent: empty."""
    values = {}
    for name, value in headers:
        values.setdefault(name.strip().lower(), []).append(trim_value(value))
    return "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in signed)


def canonical_request(method, path, query, headers, signed, payload_hash, normalize=True):
    return "\n".join([method.upper(), canonical_uri(path, normalize), canonical_query(query),
                      canonical_headers(headers, signed), ";".join(signed), payload_hash])


def string_to_sign(amz_date, scope, canonical):
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


def signing_key(secret, date, region, service):
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(secret, date, region, service, text):
    return hmac.new(signing_key(secret, date, region, service), text.encode("utf-8"), hashlib.sha256).hexdigest()


def header(headers, name):
    """The first value of a header (case-insensitive), or None."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value.strip()
    return None


def parse_amz_date(text):
    return datetime.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def verify(method, path, headers, body, region, service, credentials_for, now=None, max_skew=300, normalize=True):
    """Checks one request's SigV4 Authorization header; see the module docstring."""
    def refuse(code, message, status=403, **extra):
        return Verdict(False, code, message, status, **extra)

    authorization = header(headers, "Authorization")
    if authorization is None:
        return refuse("MissingAuthenticationToken", "Request is missing Authentication Token")
    match = AUTHORIZATION.match(authorization)
    if match is None:
        return refuse("IncompleteSignature",
                      f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters "
                      f"(AWS4-HMAC-SHA256 only). Authorization={authorization.split(' ')[0]}")
    credential, signed_text, given_signature = match.groups()
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return refuse("IncompleteSignature", f"Credential should have 5 '/'-separated parts: {credential!r}")
    access_key_id, scope_date, scope_region, scope_service, _ = parts
    signed = signed_text.split(";")
    if signed != sorted(signed) or any(name != name.lower() or not name for name in signed):
        return refuse("IncompleteSignature", f"SignedHeaders must be lower-case and sorted: {signed_text}",
                      access_key_id=access_key_id)
    amz_date = header(headers, "X-Amz-Date")
    if amz_date is None or not AMZ_DATE.match(amz_date):
        return refuse("IncompleteSignature", "Authorization header requires existence of a valid 'X-Amz-Date' header",
                      access_key_id=access_key_id)
    if "host" not in signed or "x-amz-date" not in signed:
        return refuse("IncompleteSignature", "'Host' and 'X-Amz-Date' must be SignedHeaders in the AWS Authorization.",
                      access_key_id=access_key_id)
    if scope_region != region:
        return refuse("SignatureDoesNotMatch", f"Credential should be scoped to a valid region, not '{scope_region}'. ",
                      access_key_id=access_key_id)
    if scope_service != service:
        return refuse("SignatureDoesNotMatch", f"Credential should be scoped to correct service: '{service}'. ",
                      access_key_id=access_key_id)
    if scope_date != amz_date[:8]:
        return refuse("SignatureDoesNotMatch",
                      f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                      f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.", access_key_id=access_key_id)
    secret = credentials_for(access_key_id, header(headers, "X-Amz-Security-Token"))
    if not isinstance(secret, str):
        code, message = secret
        return refuse(code, message, access_key_id=access_key_id)
    now = datetime.datetime.now(datetime.timezone.utc).timestamp() if now is None else now
    try:
        dated = parse_amz_date(amz_date)
    except ValueError:
        return refuse("IncompleteSignature", f"X-Amz-Date is not a valid date: {amz_date}", access_key_id=access_key_id)
    if abs(dated - now) > max_skew:
        server_time = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return refuse("RequestExpired", f"Request timestamp {amz_date} is more than {int(max_skew)} seconds "
                      f"from the server time {server_time}.", status=400, access_key_id=access_key_id)
    payload_hash = hashlib.sha256(body or b"").hexdigest()
    sent_hash = header(headers, "X-Amz-Content-Sha256")
    if sent_hash is not None and sent_hash.lower() != payload_hash:
        return refuse("SignatureDoesNotMatch", f"The provided 'x-amz-content-sha256' header does not match what was "
                      f"computed ({sent_hash} != {payload_hash}).", access_key_id=access_key_id)
    raw_path, _, query = path.partition("?")
    canonical = canonical_request(method, raw_path, query, headers, signed, payload_hash, normalize)
    scope = f"{scope_date}/{scope_region}/{scope_service}/aws4_request"
    to_sign = string_to_sign(amz_date, scope, canonical)
    expected = signature(secret, scope_date, scope_region, scope_service, to_sign)
    if not hmac.compare_digest(expected, given_signature.lower()):
        return refuse("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you "
                      "provided. Check your AWS Secret Access Key and signing method. Consult the service "
                      "documentation for details.", access_key_id=access_key_id,
                      canonical_request=canonical, string_to_sign=to_sign)
    return Verdict(True, access_key_id=access_key_id, signature_ok=True, canonical_request=canonical,
                   string_to_sign=to_sign)
