#!/usr/bin/env python3
"""A fake EC2 instance metadata service (IMDSv2 only) for the lava-boot tests.

    imds_fake.py [--region us-east-1] [--instance-id i-0123456789abcdef0] [--role lava-worker]
                 [--credential-lifetime 3600] [--access-key-id K --secret-access-key S [--token T]]
                 [--port 0] [--watch-stdin]

Prints `PORT <n>` when ready; runs until SIGTERM (or stdin EOF with --watch-stdin). The same port
also serves the Auto Scaling Query API (below), for the lifecycle calls.

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
    {"fail_next": K, "path": "/latest/..."}
                                      the same, for requests of that path only
    {"credentials": {"AccessKeyId":..., "SecretAccessKey":..., "Token":...}}
                                      served from the next fetch on, for one lifetime
    {"credential_lifetime": SECONDS}  for credentials issued from now on
    {"rotate": false}                 on expiry keep the same keys (new Expiration only)
    {"expire_now": true}              the current credentials are expired: the next fetch rotates
    {"paths": {"/latest/meta-data/autoscaling/target-lifecycle-state": "InService", "/x": null}}
                                      add or change paths; null removes one (then 404)
    {"region": ..., "instance_id": ..., "role": ...}
    {"reset_counters": true}          also empties autoscaling_calls and completions
    {"reject_old_keys": true}         Auto Scaling refuses (InvalidClientTokenId) every key but the current,
                                      unexpired role credentials, static keys included; false (the default)
                                      accepts every key ever issued, expired or not
    {"autoscaling": {"instances": {"i-...": {"group": "G", "state": "Terminating:Wait",
                        "availability_zone": "<region>a", "health": "HEALTHY", "launch_configuration": null,
                        "instance_type": null, "protected_from_scale_in": false}},
                     "hooks": {"G": [{"name": "H", "transition": "autoscaling:EC2_INSTANCE_TERMINATING",
                        "heartbeat_timeout": 3600, "global_timeout": 172800, "default_result": "CONTINUE",
                        "notification_metadata": null}]},
                     "pending": [{"instance": "i-...", "group": "G", "hook": "H", "token": "uuid-or-null"}]}}
                                      each sub-key given replaces that part; only "group" (instances) and
                                      "name" (hooks), "instance" and "hook" (pending) are required: state
                                      defaults to InService, transition to ..._TERMINATING (the other
                                      choice: autoscaling:EC2_INSTANCE_LAUNCHING), heartbeat_timeout
                                      3600, global_timeout min(100 x heartbeat, 172800),
                                      default_result ABANDON, a pending
                                      action's group to the instance's, token to null
    {"autoscaling_faults": [{"action": "CompleteLifecycleAction", "count": 2, "status": 500,
                             "code": "InternalFailure", "message": "..."}, ...]}
                                      appended to the armed faults: the next `count` (default 1) calls of
                                      that action ("*": any) get that awsQuery error (status default 500,
                                      code InternalFailure), in the order armed; checked after the
                                      signature, and a faulted call changes no state
    {"autoscaling_hold": ["DescribeAutoScalingInstances", ...]}
                                      calls of these actions wait unanswered, before any check, until
                                      a later request holds them no more ({"autoscaling_hold": []})
    {"autoscaling_reset": true}       forgets instances, hooks, pending actions, faults, calls, completions,
                                      holds and reject_old_keys (applied before the other keys of that request)
  GET /__control__  counters: {"token_puts", "token_ttls": [...], "bad_token_puts",
    "gets_with_token", "gets_without_token", "unauthorized", "failures_served",
    "credential_fetches", "access_keys_served": [...], "requests": [{"method", "path"}, ...],
    "autoscaling_calls": [{"action", "params": {...all but Action}, "time": time.time(),
        "monotonic": time.monotonic(), "access_key_id", "signature_ok", "status", "code" (null on 200),
        "injected": true for an armed fault}, ...]   (every Auto Scaling call, refused ones included),
    "completions": [{"instance", "group", "hook", "result", "token" (as sent, or null), "time"}, ...],
    "autoscaling_held": the calls waiting on a hold now,
    "autoscaling": {"instances", "hooks", "pending" (each with "heartbeats", "last_heartbeat")}
        (the state as set, defaults filled in), "autoscaling_faults": [...still armed],
    "reject_old_keys"}

Auto Scaling (Query protocol, API version 2011-01-01), on the same port:
  POST /  Content-Type application/x-www-form-urlencoded, body `Action=...&Version=2011-01-01&...`
      (query-string parameters are read too). Every call must be SigV4-signed for service
      `autoscaling` in --region (see sigv4_check.py: 403 MissingAuthenticationToken,
      IncompleteSignature, SignatureDoesNotMatch; 400 RequestExpired more than 5 minutes off) with a
      known key: a role key ever served through IMDS (see reject_old_keys) or --access-key-id with
      --secret-access-key (and --token when given). An unknown or refused key: 403
      InvalidClientTokenId; a session token that is not the key's: 403 ExpiredToken; none where the
      key has one: 403 InvalidClientTokenId. IMDS's fail_next does not apply here.
  Answers `<XResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><XResult>...</XResult>
      <ResponseMetadata><RequestId>uuid</RequestId></ResponseMetadata></XResponse>` (text/xml), errors
      `<ErrorResponse xmlns=...><Error><Type>Sender|Receiver</Type><Code>..</Code><Message>..</Message>
      </Error><RequestId>uuid</RequestId></ErrorResponse>`. No Action: 400 MissingAction; an unknown
      one, or Version not 2011-01-01: 400 InvalidAction; a required parameter missing: 400 ValidationError.
    DescribeAutoScalingInstances [InstanceIds.member.N]  AutoScalingInstances/member (InstanceId,
        InstanceType when set, AutoScalingGroupName, AvailabilityZone, LifecycleState, HealthStatus,
        LaunchConfigurationName when set, ProtectedFromScaleIn) for the known ones of those ids (all
        without ids); none known: <AutoScalingInstances/>.
    DescribeLifecycleHooks AutoScalingGroupName [LifecycleHookNames.member.N]  LifecycleHooks/member
        (LifecycleHookName, AutoScalingGroupName, LifecycleTransition, [NotificationMetadata],
        HeartbeatTimeout, GlobalTimeout, DefaultResult); a group with neither hooks nor instances:
        400 ValidationError "AutoScalingGroup name not found - AutoScalingGroup G not found".
    RecordLifecycleActionHeartbeat AutoScalingGroupName LifecycleHookName InstanceId|LifecycleActionToken
    CompleteLifecycleAction  the same, and LifecycleActionResult CONTINUE|ABANDON
        Need a pending action for that group, hook and instance (and token, when one is sent: it must
        equal the pending one's, so a token-less pending action takes none), else 400 ValidationError
        "No active Lifecycle Action found with instance ID <id>" (or "... with token <t>" when only
        a token is sent). A heartbeat counts on the pending action; Complete ends it, records a
        completion and turns the instance's `...:Wait` state into `...:Proceed`. Empty results:
        <RecordLifecycleActionHeartbeatResult/>, <CompleteLifecycleActionResult/>.
"""
import argparse
import datetime
import json
import secrets
import string
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import peer_common
import sigv4_check

MAX_TTL = 21600
LOG_LIMIT = 2000
AS_CALL_LIMIT = 20000
AS_NAMESPACE = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
AS_VERSION = "2011-01-01"
AS_MAX_SKEW = 300
TRANSITIONS = ("autoscaling:EC2_INSTANCE_TERMINATING", "autoscaling:EC2_INSTANCE_LAUNCHING")
INVALID_TOKEN = ("InvalidClientTokenId", "The security token included in the request is invalid.")
EXPIRED_TOKEN = ("ExpiredToken", "The security token included in the request is expired")


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_text(alphabet, length):
    return "".join(secrets.choice(alphabet) for _ in range(length))


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.hold_changed = threading.Condition(self.lock)
        self.held_waiting = 0
        self.region = args.region
        self.instance_id = args.instance_id
        self.role = args.role
        self.lifetime = args.credential_lifetime
        self.rotate = True
        self.tokens = {}  # token -> expiry (monotonic)
        self.paths = {}
        self.fail_count = 0
        self.fail_status = 500
        self.fail_path = None
        self.credentials = None  # current: dict with AccessKeyId, ..., "expires" (wall clock)
        self.pending = None      # set by control or the command line: served from the next fetch
        self.known_keys = {}     # access key id -> {"secret", "tokens": set (None: no token)}, for Auto Scaling
        self.reject_old_keys = False
        if args.access_key_id:
            self.pending = {"AccessKeyId": args.access_key_id, "SecretAccessKey": args.secret_access_key or "",
                            "Token": args.token or random_text(string.ascii_letters + string.digits, 120)}
            self.know_key(args.access_key_id, args.secret_access_key or "", args.token)
        self.autoscaling_reset()
        self.reset_counters()

    def reset_counters(self):
        self.counters = {
            "token_puts": 0, "token_ttls": [], "bad_token_puts": 0,
            "gets_with_token": 0, "gets_without_token": 0, "unauthorized": 0,
            "failures_served": 0, "credential_fetches": 0, "access_keys_served": [], "requests": [],
        }
        self.as_calls = []
        self.completions = []

    def autoscaling_reset(self):
        self.as_instances = {}   # instance id -> {"group", "state", ...}
        self.as_hooks = {}       # group -> [{"name", "transition", ...}]
        self.as_pending = []     # [{"instance", "group", "hook", "token", "heartbeats", "last_heartbeat"}]
        self.as_faults = []      # [{"action", "count", "status", "code", "message"}]
        self.as_calls = []
        self.completions = []
        self.reject_old_keys = False
        self.held_actions = set()

    def know_key(self, access_key_id, secret, token):
        entry = self.known_keys.setdefault(access_key_id, {"secret": secret, "tokens": set()})
        entry["secret"] = secret
        entry["tokens"].add(token)

    def credentials_for(self, access_key_id, token):
        """Under lock: the secret of a key Auto Scaling accepts with that session token, else (code, message)."""
        entry = self.known_keys.get(access_key_id)
        if entry is None:
            return INVALID_TOKEN
        if self.reject_old_keys:
            current = self.credentials
            if current is None or current["AccessKeyId"] != access_key_id or time.time() >= current["expires"]:
                return INVALID_TOKEN
        if token not in entry["tokens"]:
            return INVALID_TOKEN if token is None else EXPIRED_TOKEN
        return entry["secret"]

    def issue(self, keys=None):
        now = time.time()
        if keys is None:
            keys = {
                "AccessKeyId": "ASIA" + random_text(string.ascii_uppercase + "234567", 16),
                "SecretAccessKey": random_text(string.ascii_letters + string.digits + "/+", 40),
                "Token": random_text(string.ascii_letters + string.digits + "/+=", 160),
            }
        self.credentials = dict(keys, issued=now, expires=now + self.lifetime)
        self.know_key(keys["AccessKeyId"], keys["SecretAccessKey"], keys["Token"])

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
        if request.get("autoscaling_reset"):
            self.autoscaling_reset()
        if request.get("reset_counters"):
            self.reset_counters()
        if "reject_old_keys" in request:
            self.reject_old_keys = bool(request["reject_old_keys"])
        if "autoscaling" in request:
            self.control_autoscaling(request["autoscaling"])
        if "autoscaling_hold" in request:
            self.held_actions = {str(action) for action in request["autoscaling_hold"] or []}
        # Held calls no longer held go on.
        self.hold_changed.notify_all()
        for fault in request.get("autoscaling_faults") or []:
            self.as_faults.append({"action": str(fault["action"]), "count": int(fault.get("count", 1)),
                                   "status": int(fault.get("status", 500)),
                                   "code": str(fault.get("code", "InternalFailure")),
                                   "message": str(fault.get("message", "injected fault"))})
        if "fail_next" in request:
            self.fail_count = int(request["fail_next"])
            self.fail_status = int(request.get("status", 500))
            self.fail_path = request.get("path")
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

    def control_autoscaling(self, given):
        if "instances" in given:
            instances = {}
            for instance_id, spec in (given["instances"] or {}).items():
                instances[instance_id] = {
                    "group": str(spec["group"]), "state": str(spec.get("state") or "InService"),
                    "availability_zone": spec.get("availability_zone") or self.region + "a",
                    "health": spec.get("health") or "HEALTHY",
                    "launch_configuration": spec.get("launch_configuration"),
                    "instance_type": spec.get("instance_type"),
                    "protected_from_scale_in": bool(spec.get("protected_from_scale_in", False)),
                }
            self.as_instances = instances
        if "hooks" in given:
            hooks = {}
            for group, specs in (given["hooks"] or {}).items():
                hooks[group] = []
                for spec in specs:
                    transition = spec.get("transition") or TRANSITIONS[0]
                    if transition not in TRANSITIONS:
                        raise ValueError(f"hook transition must be one of {TRANSITIONS}: {transition!r}")
                    heartbeat = int(spec.get("heartbeat_timeout") or 3600)
                    hooks[group].append({
                        "name": str(spec["name"]), "transition": transition, "heartbeat_timeout": heartbeat,
                        "global_timeout": int(spec.get("global_timeout") or min(100 * heartbeat, 172800)),
                        "default_result": spec.get("default_result") or "ABANDON",
                        "notification_metadata": spec.get("notification_metadata"),
                    })
            self.as_hooks = hooks
        if "pending" in given:
            pending = []
            for spec in given["pending"] or []:
                instance_id = str(spec["instance"])
                group = spec.get("group") or (self.as_instances.get(instance_id) or {}).get("group")
                if not group:
                    raise ValueError(f"pending action for {instance_id}: no group given or known")
                pending.append({"instance": instance_id, "group": str(group), "hook": str(spec["hook"]),
                                "token": spec.get("token"), "heartbeats": 0, "last_heartbeat": None})
            self.as_pending = pending

    def take_fault(self, action):
        """Under lock: the armed fault this call of `action` gets, if any (consuming one count)."""
        for fault in self.as_faults:
            if fault["action"] in (action, "*") and fault["count"] > 0:
                fault["count"] -= 1
                if fault["count"] == 0:
                    self.as_faults.remove(fault)
                return fault
        return None

    def snapshot(self):
        answer = dict(self.counters, autoscaling_calls=self.as_calls, completions=self.completions,
                      autoscaling={"instances": self.as_instances, "hooks": self.as_hooks,
                                   "pending": self.as_pending},
                      autoscaling_faults=self.as_faults, reject_old_keys=self.reject_old_keys,
                      autoscaling_held=self.held_waiting)
        return json.loads(json.dumps(answer))


STATE = None


# ---- Auto Scaling (Query protocol)

class QueryError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def validation(message):
    return QueryError(400, "ValidationError", message)


def required(params, name):
    value = params.get(name)
    if value is None or value == "":
        member = name[0].lower() + name[1:]
        raise validation(f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: "
                         f"Member must not be null")
    return value


def members(params, name):
    """`Name.member.1`, `Name.member.2`, ... in index order."""
    prefix = name + ".member."
    found = []
    for key, value in params.items():
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            found.append((int(key[len(prefix):]), value))
    return [value for _, value in sorted(found)]


def element(name, value, indent):
    return f"{indent}<{name}>{escape(str(value))}</{name}>\n"


def member_list(name, items, indent):
    """`<Name><member>...</member>...</Name>` (`<Name/>` when empty); items are lists of (tag, value)."""
    if not items:
        return f"{indent}<{name}/>\n"
    out = [f"{indent}<{name}>\n"]
    for fields in items:
        out.append(f"{indent}  <member>\n")
        out.extend(element(tag, value, indent + "    ") for tag, value in fields)
        out.append(f"{indent}  </member>\n")
    out.append(f"{indent}</{name}>\n")
    return "".join(out)


def query_response(action, result, request_id):
    inner = f"  <{action}Result>\n{result}  </{action}Result>\n" if result else f"  <{action}Result/>\n"
    return (f'<{action}Response xmlns="{AS_NAMESPACE}">\n{inner}'
            f"  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n"
            f"</{action}Response>\n")


def query_error(status, code, message, request_id):
    kind = "Receiver" if status >= 500 else "Sender"
    return (f'<ErrorResponse xmlns="{AS_NAMESPACE}">\n  <Error>\n    <Type>{kind}</Type>\n'
            f"    <Code>{escape(code)}</Code>\n    <Message>{escape(message)}</Message>\n  </Error>\n"
            f"  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n")


def describe_instances(state, params):
    wanted = members(params, "InstanceIds")
    ids = [i for i in dict.fromkeys(wanted) if i in state.as_instances] if wanted else sorted(state.as_instances)
    items = []
    for instance_id in ids:
        spec = state.as_instances[instance_id]
        fields = [("InstanceId", instance_id)]
        if spec["instance_type"]:
            fields.append(("InstanceType", spec["instance_type"]))
        fields += [("AutoScalingGroupName", spec["group"]), ("AvailabilityZone", spec["availability_zone"]),
                   ("LifecycleState", spec["state"]), ("HealthStatus", spec["health"])]
        if spec["launch_configuration"]:
            fields.append(("LaunchConfigurationName", spec["launch_configuration"]))
        fields.append(("ProtectedFromScaleIn", "true" if spec["protected_from_scale_in"] else "false"))
        items.append(fields)
    return member_list("AutoScalingInstances", items, "    ")


def describe_hooks(state, params):
    group = required(params, "AutoScalingGroupName")
    known = group in state.as_hooks or any(spec["group"] == group for spec in state.as_instances.values())
    if not known:
        raise validation(f"AutoScalingGroup name not found - AutoScalingGroup {group} not found")
    names = members(params, "LifecycleHookNames")
    items = []
    for hook in state.as_hooks.get(group, []):
        if names and hook["name"] not in names:
            continue
        fields = [("LifecycleHookName", hook["name"]), ("AutoScalingGroupName", group),
                  ("LifecycleTransition", hook["transition"])]
        if hook["notification_metadata"] is not None:
            fields.append(("NotificationMetadata", hook["notification_metadata"]))
        fields += [("HeartbeatTimeout", hook["heartbeat_timeout"]), ("GlobalTimeout", hook["global_timeout"]),
                   ("DefaultResult", hook["default_result"])]
        items.append(fields)
    return member_list("LifecycleHooks", items, "    ")


def find_pending(state, params):
    """The pending action a heartbeat or completion names, else the AWS ValidationError."""
    group = required(params, "AutoScalingGroupName")
    hook = required(params, "LifecycleHookName")
    instance_id = params.get("InstanceId") or None
    token = params.get("LifecycleActionToken") or None
    if instance_id is None and token is None:
        raise validation("Either InstanceId or LifecycleActionToken must be specified.")
    for action in state.as_pending:
        if action["group"] != group or action["hook"] != hook:
            continue
        if instance_id is not None and action["instance"] != instance_id:
            continue
        if token is not None and action["token"] != token:
            continue
        return action
    if instance_id is not None:
        raise validation(f"No active Lifecycle Action found with instance ID {instance_id}")
    raise validation(f"No active Lifecycle Action found with token {token}")


def record_heartbeat(state, params):
    action = find_pending(state, params)
    action["heartbeats"] += 1
    action["last_heartbeat"] = time.time()
    return ""


def complete_action(state, params):
    result = required(params, "LifecycleActionResult")
    if result not in ("CONTINUE", "ABANDON"):
        raise validation(f"Valid values for LifecycleActionResult are CONTINUE and ABANDON, not {result}")
    action = find_pending(state, params)
    state.as_pending.remove(action)
    state.completions.append({"instance": action["instance"], "group": action["group"], "hook": action["hook"],
                              "result": result, "token": params.get("LifecycleActionToken") or None,
                              "time": time.time()})
    spec = state.as_instances.get(action["instance"])
    if spec is not None and spec["state"].endswith(":Wait"):
        spec["state"] = spec["state"][:-len(":Wait")] + ":Proceed"
    return ""


AS_ACTIONS = {
    "DescribeAutoScalingInstances": describe_instances,
    "DescribeLifecycleHooks": describe_hooks,
    "RecordLifecycleActionHeartbeat": record_heartbeat,
    "CompleteLifecycleAction": complete_action,
}


def autoscaling_call(state, action, params):
    """Under lock, after the signature and fault checks: the XML result of a call, or QueryError."""
    if not action:
        raise QueryError(400, "MissingAction", "Missing Action")
    version = params.get("Version") or "NO_VERSION_SPECIFIED"
    handler = AS_ACTIONS.get(action)
    if handler is None or version != AS_VERSION:
        raise QueryError(400, "InvalidAction", f"Could not find operation {action} for version {version}")
    return handler(state, params)


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

    def injected_failure(self, path):
        """Under lock: the status to fail this request with, if one is armed."""
        if STATE.fail_count > 0 and STATE.fail_path in (None, path):
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
            failure = self.injected_failure(path)
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
        if path == "/":
            return self.autoscaling(body)
        if path != "/__control__":
            with STATE.lock:
                self.log_request_seen()
                failure = self.injected_failure(path)
            return self.reply(failure or 405, "Method Not Allowed\n")
        try:
            request = json.loads(body or b"{}")
            with STATE.lock:
                STATE.control(request)
                answer = STATE.snapshot()
        except (ValueError, TypeError, KeyError) as error:
            return self.reply(400, json.dumps({"error": str(error)}), "application/json")
        self.reply(200, json.dumps(answer), "application/json")

    def autoscaling(self, body):
        """One Auto Scaling Query call: signature, key, fault, then the action; every call is logged."""
        received, monotonic = time.time(), time.monotonic()
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.pop("Action", None)
        request_id = str(uuid.uuid4())
        injected = False
        with STATE.lock:
            if action in STATE.held_actions:
                STATE.held_waiting += 1
                STATE.hold_changed.wait_for(lambda: action not in STATE.held_actions)
                STATE.held_waiting -= 1
            verdict = sigv4_check.verify(self.command, self.path, list(self.headers.items()), body, STATE.region,
                                         "autoscaling", STATE.credentials_for, max_skew=AS_MAX_SKEW)
            if not verdict.ok:
                status, code = verdict.status, verdict.code
                answer = query_error(status, code, verdict.message, request_id)
            elif action and (fault := STATE.take_fault(action)) is not None:
                injected = True
                status, code = fault["status"], fault["code"]
                answer = query_error(status, code, fault["message"], request_id)
            else:
                try:
                    answer = query_response(action, autoscaling_call(STATE, action, params), request_id)
                    status, code = 200, None
                except QueryError as error:
                    status, code = error.status, error.code
                    answer = query_error(status, code, error.message, request_id)
            if len(STATE.as_calls) < AS_CALL_LIMIT:
                STATE.as_calls.append({"action": action, "params": params, "time": received, "monotonic": monotonic,
                                       "access_key_id": verdict.access_key_id, "signature_ok": verdict.signature_ok,
                                       "status": status, "code": code, "injected": injected})
        self.reply(status, answer, "text/xml", headers=[("x-amzn-RequestId", request_id)])

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/__control__":
            with STATE.lock:
                answer = STATE.snapshot()
            return self.reply(200, json.dumps(answer), "application/json")
        with STATE.lock:
            self.log_request_seen()
            failure = self.injected_failure(path)
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
