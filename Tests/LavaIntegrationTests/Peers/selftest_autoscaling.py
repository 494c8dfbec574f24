#!/usr/bin/env python3
"""Self-test of the fake's Auto Scaling Query API (imds_fake.py) and of sigv4_check.py.

    python3 Tests/LavaIntegrationTests/Peers/selftest_autoscaling.py

Not part of `swift test`: run by hand after changing either peer. boto3/botocore are the reference
client (only here; the peers themselves are stdlib only). It unit-checks sigv4_check.py against every
case of Tests/LavaSigV4Tests/Vectors/sigv4 (or $SIGV4_VECTORS), then starts imds_fake.py as the Swift tests do
(reads `PORT n`), sets state through /__control__ and drives it with boto3 using credentials fetched
from the fake's own IMDS, static ones, and botocore's own IMDS credential provider. Prints one line
per check; exits 0 only when all pass.
"""
import concurrent.futures
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sigv4_check  # noqa: E402

import boto3  # noqa: E402
import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402
import botocore.session  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

# The repo's own copy of the published SigV4 suite (with its LICENSE), so the repo stands alone.
VECTORS = os.environ.get("SIGV4_VECTORS", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "..", "..", "LavaSigV4Tests", "Vectors", "sigv4"))
REGION = "eu-west-1"
INSTANCE = "i-0123456789abcdef0"
OTHER = "i-0fedcba9876543210"
GROUP = "lava-workers"
HOOK = "lava-drain"
LAUNCH_HOOK = "lava-ready"
NO_ACTIVE = f"No active Lifecycle Action found with instance ID {INSTANCE}"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

results = []


def check(name, condition, detail=""):
    results.append((name, bool(condition)))
    print(("ok   " if condition else "FAIL ") + name + ("" if condition or not detail else f"  -- {detail}"))
    return bool(condition)


# ---- sigv4_check against the published vectors

def parse_vector_request(text):
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    path = rest.rsplit(" HTTP/", 1)[0]
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, path, headers, body.encode("utf-8")


def vector_time(context):
    return datetime.datetime.strptime(context["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def unit_vectors():
    cases = sorted(name for name in os.listdir(VECTORS) if os.path.isdir(os.path.join(VECTORS, name)))
    passed, failed = 0, []
    for case in cases:
        folder = os.path.join(VECTORS, case)

        def read(name):
            with open(os.path.join(folder, name), encoding="utf-8") as file:
                return file.read()
        context = json.loads(read("context.json"))
        method, path, headers, body = parse_vector_request(read("header-signed-request.txt"))
        secret = context["credentials"]["secret_access_key"]
        authorization = sigv4_check.AUTHORIZATION.match(sigv4_check.header(headers, "Authorization"))
        signed = authorization.group(2).split(";")
        raw_path, _, query = path.partition("?")
        payload = sigv4_check.header(headers, "X-Amz-Content-Sha256") or hashlib.sha256(body).hexdigest()
        canonical = sigv4_check.canonical_request(method, raw_path, query, headers, signed, payload,
                                                  context["normalize"])
        amz_date = sigv4_check.header(headers, "X-Amz-Date")
        scope = f"{amz_date[:8]}/{context['region']}/{context['service']}/aws4_request"
        to_sign = sigv4_check.string_to_sign(amz_date, scope, canonical)
        signature = sigv4_check.signature(secret, amz_date[:8], context["region"], context["service"], to_sign)
        verdict = sigv4_check.verify(method, path, headers, body, context["region"], context["service"],
                                     lambda key, token: secret, now=vector_time(context),
                                     normalize=context["normalize"])
        good = (canonical == read("header-canonical-request.txt") and to_sign == read("header-string-to-sign.txt")
                and signature == read("header-signature.txt").strip() and verdict.ok)
        if good:
            passed += 1
        else:
            failed.append(case)
    check(f"sigv4 vectors: canonical request, string to sign, signature and verify() for {passed}/{len(cases)} "
          f"cases", not failed and len(cases) >= 38, f"failed: {failed}")

    # the named cases, and refusals, on post-x-www-form-urlencoded (the Query protocol's shape)
    folder = os.path.join(VECTORS, "post-x-www-form-urlencoded")
    with open(os.path.join(folder, "context.json")) as file:
        context = json.load(file)
    with open(os.path.join(folder, "header-signed-request.txt"), encoding="utf-8") as file:
        method, path, headers, body = parse_vector_request(file.read())
    now = vector_time(context)
    secret = context["credentials"]["secret_access_key"]

    def run(headers=headers, body=body, now=now, region="us-east-1", lookup=lambda key, token: secret):
        return sigv4_check.verify(method, path, headers, body, region, "service", lookup, now=now)
    check("sigv4 post-x-www-form-urlencoded verifies (signature d3875051...)",
          run().ok and run().signature_ok and run().access_key_id == "AKIDEXAMPLE")
    tampered = [(n, v.replace("Signature=d", "Signature=e")) if n == "Authorization" else (n, v) for n, v in headers]
    check("sigv4: a tampered signature is SignatureDoesNotMatch 403",
          (run(headers=tampered).code, run(headers=tampered).status) == ("SignatureDoesNotMatch", 403))
    check("sigv4: a wrong secret is SignatureDoesNotMatch",
          run(lookup=lambda key, token: secret[:-1] + "X").code == "SignatureDoesNotMatch")
    check("sigv4: a changed body is SignatureDoesNotMatch (x-amz-content-sha256 differs)",
          run(body=b"Param1=value2").code == "SignatureDoesNotMatch"
          and "x-amz-content-sha256" in run(body=b"Param1=value2").message)
    check("sigv4: 299 s off verifies, 301 s off either way is RequestExpired 400",
          run(now=now + 299).ok and run(now=now - 299).ok
          and (run(now=now + 301).code, run(now=now + 301).status) == ("RequestExpired", 400)
          and run(now=now - 301).code == "RequestExpired")
    check("sigv4: another region's scope is SignatureDoesNotMatch", run(region="eu-west-1").code == "SignatureDoesNotMatch")
    check("sigv4: the key lookup's refusal is passed on",
          run(lookup=lambda key, token: ("InvalidClientTokenId", "no")).code == "InvalidClientTokenId")
    unsigned = [(n, v) for n, v in headers if n != "Authorization"]
    check("sigv4: no Authorization is MissingAuthenticationToken", run(headers=unsigned).code == "MissingAuthenticationToken")
    no_date = [(n, v) for n, v in headers if n != "X-Amz-Date"]
    check("sigv4: no X-Amz-Date is IncompleteSignature", run(headers=no_date).code == "IncompleteSignature")

    folder = os.path.join(VECTORS, "get-vanilla-with-session-token")
    with open(os.path.join(folder, "context.json")) as file:
        context = json.load(file)
    with open(os.path.join(folder, "header-signed-request.txt"), encoding="utf-8") as file:
        method, path, headers, body = parse_vector_request(file.read())
    seen = []
    verdict = sigv4_check.verify(method, path, headers, body, "us-east-1", "service",
                                 lambda key, token: seen.append((key, token)) or context["credentials"]["secret_access_key"],
                                 now=vector_time(context))
    check("sigv4 get-vanilla-with-session-token verifies and hands the token to the key lookup",
          verdict.ok and seen == [("AKIDEXAMPLE", context["credentials"]["token"])])


# ---- the fake

class Fake:
    def __init__(self, *arguments):
        self.process = subprocess.Popen([sys.executable, os.path.join(HERE, "imds_fake.py"), *arguments, "--watch-stdin"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.process.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise SystemExit(f"imds_fake.py did not announce its port: {line!r} {self.process.stderr.read()!r}")
        self.port = int(line.split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.process.terminate()
        self.process.wait(10)

    def http(self, method, path, body=None, headers=None):
        request = urllib.request.Request(self.endpoint + path, data=body, method=method, headers=headers or {})
        try:
            with NO_PROXY.open(request, timeout=10) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def control(self, request=None):
        body = json.dumps(request).encode() if request is not None else None
        status, answer, _ = self.http("POST" if request is not None else "GET", "/__control__", body,
                                      {"Content-Type": "application/json"})
        if status != 200:
            raise SystemExit(f"control {request} -> {status} {answer!r}")
        return json.loads(answer)

    def imds_credentials(self):
        status, token, _ = self.http("PUT", "/latest/api/token", b"", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
        assert status == 200, status
        headers = {"X-aws-ec2-metadata-token": token.decode()}
        status, role, _ = self.http("GET", "/latest/meta-data/iam/security-credentials/", headers=headers)
        assert status == 200, status
        status, document, _ = self.http("GET", f"/latest/meta-data/iam/security-credentials/{role.decode()}",
                                        headers=headers)
        assert status == 200, status
        return json.loads(document)

    def client(self, key, secret, token=None, region=REGION, attempts=1):
        return boto3.client("autoscaling", endpoint_url=self.endpoint, region_name=region, aws_access_key_id=key,
                            aws_secret_access_key=secret, aws_session_token=token,
                            config=Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                                          parameter_validation=False))

    def raw(self, body, key, secret, token=None, region=REGION, extra_headers=None, when=None, sign=True):
        """A hand-built Query POST signed by botocore's SigV4Auth (optionally at another time)."""
        request = botocore.awsrequest.AWSRequest(
            method="POST", url=self.endpoint + "/", data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **(extra_headers or {})})
        if sign:
            credentials = botocore.credentials.Credentials(key, secret, token)
            auth = botocore.auth.SigV4Auth(credentials, "autoscaling", region)
            if when is None:
                auth.add_auth(request)
            else:
                with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                    auth.add_auth(request)
        prepared = request.prepare()
        return self.http("POST", "/", prepared.body if isinstance(prepared.body, bytes) else prepared.body.encode(),
                         dict(prepared.headers))


def error_of(call):
    """(code, http status, message) of a ClientError, or None when the call succeeded."""
    try:
        call()
    except ClientError as error:
        return (error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"],
                error.response["Error"].get("Message"))
    return None


def query_error_code(answer):
    import xml.etree.ElementTree as ElementTree
    root = ElementTree.fromstring(answer)
    ns = {"a": "http://autoscaling.amazonaws.com/doc/2011-01-01/"}
    return (root.tag, root.findtext("a:Error/a:Type", namespaces=ns), root.findtext("a:Error/a:Code", namespaces=ns),
            root.findtext("a:RequestId", namespaces=ns))


def server_tests():
    fake = Fake("--region", REGION, "--instance-id", INSTANCE)
    try:
        check("fake announces PORT and still serves IMDS", fake.port > 0 and fake.http("GET", "/latest/meta-data/instance-id")[0] == 401)
        creds = fake.imds_credentials()
        check("IMDS role credentials fetched", creds["AccessKeyId"].startswith("ASIA") and creds["Token"])
        asg = fake.client(creds["AccessKeyId"], creds["SecretAccessKey"], creds["Token"])

        # -- DescribeAutoScalingInstances
        answer = asg.describe_auto_scaling_instances(InstanceIds=[INSTANCE])
        check("DescribeAutoScalingInstances: not in a group -> empty list, botocore parses it",
              answer["AutoScalingInstances"] == [] and len(answer["ResponseMetadata"]["RequestId"]) == 36)
        fake.control({"autoscaling": {
            "instances": {INSTANCE: {"group": GROUP, "state": "InService"},
                          OTHER: {"group": GROUP, "state": "Pending:Wait", "launch_configuration": "lava-lc",
                                  "instance_type": "m5.large", "availability_zone": "eu-west-1b"}},
            "hooks": {GROUP: [{"name": HOOK, "transition": "autoscaling:EC2_INSTANCE_TERMINATING",
                               "heartbeat_timeout": 600, "global_timeout": 7200, "default_result": "CONTINUE"},
                              {"name": LAUNCH_HOOK, "transition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                               "heartbeat_timeout": 300, "notification_metadata": "{\"a\": 1}"}]}}})
        answer = asg.describe_auto_scaling_instances(InstanceIds=[INSTANCE])
        check("DescribeAutoScalingInstances: the member's fields parse",
              answer["AutoScalingInstances"] == [{"InstanceId": INSTANCE, "AutoScalingGroupName": GROUP,
                                                  "AvailabilityZone": "eu-west-1a", "LifecycleState": "InService",
                                                  "HealthStatus": "HEALTHY", "ProtectedFromScaleIn": False}],
              answer["AutoScalingInstances"])
        answer = asg.describe_auto_scaling_instances(InstanceIds=[OTHER, "i-00000000000000000"])
        check("DescribeAutoScalingInstances: optional fields (LaunchConfigurationName, InstanceType), unknown id left out",
              answer["AutoScalingInstances"] == [{"InstanceId": OTHER, "InstanceType": "m5.large",
                                                  "AutoScalingGroupName": GROUP, "AvailabilityZone": "eu-west-1b",
                                                  "LifecycleState": "Pending:Wait", "HealthStatus": "HEALTHY",
                                                  "LaunchConfigurationName": "lava-lc", "ProtectedFromScaleIn": False}],
              answer["AutoScalingInstances"])
        check("DescribeAutoScalingInstances: no ids -> every instance",
              [i["InstanceId"] for i in asg.describe_auto_scaling_instances()["AutoScalingInstances"]] == sorted([INSTANCE, OTHER]))

        # -- DescribeLifecycleHooks
        hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=GROUP)["LifecycleHooks"]
        check("DescribeLifecycleHooks: both hooks parse with their numbers and defaults",
              hooks == [{"LifecycleHookName": HOOK, "AutoScalingGroupName": GROUP,
                         "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "HeartbeatTimeout": 600,
                         "GlobalTimeout": 7200, "DefaultResult": "CONTINUE"},
                        {"LifecycleHookName": LAUNCH_HOOK, "AutoScalingGroupName": GROUP,
                         "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING", "NotificationMetadata": "{\"a\": 1}",
                         "HeartbeatTimeout": 300, "GlobalTimeout": 30000, "DefaultResult": "ABANDON"}], hooks)
        hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=GROUP, LifecycleHookNames=[LAUNCH_HOOK])["LifecycleHooks"]
        check("DescribeLifecycleHooks: LifecycleHookNames filters", [h["LifecycleHookName"] for h in hooks] == [LAUNCH_HOOK])
        failure = error_of(lambda: asg.describe_lifecycle_hooks(AutoScalingGroupName="no-such-group"))
        check("DescribeLifecycleHooks: unknown group -> ValidationError 400",
              failure is not None and failure[:2] == ("ValidationError", 400) and "no-such-group" in failure[2], failure)
        failure = error_of(lambda: asg.describe_lifecycle_hooks())
        check("DescribeLifecycleHooks: missing AutoScalingGroupName -> ValidationError 400",
              failure is not None and failure[:2] == ("ValidationError", 400), failure)

        # -- heartbeat and completion
        failure = error_of(lambda: asg.record_lifecycle_action_heartbeat(AutoScalingGroupName=GROUP, LifecycleHookName=HOOK,
                                                                         InstanceId=INSTANCE))
        check("RecordLifecycleActionHeartbeat with nothing pending -> ValidationError 'No active Lifecycle Action found'",
              failure == ("ValidationError", 400, NO_ACTIVE), failure)
        fake.control({"autoscaling": {"pending": [{"instance": INSTANCE, "hook": HOOK, "token": None}]},
                      "paths": {"/latest/meta-data/autoscaling/target-lifecycle-state": "Terminated"}})
        answer = asg.record_lifecycle_action_heartbeat(AutoScalingGroupName=GROUP, LifecycleHookName=HOOK, InstanceId=INSTANCE)
        check("RecordLifecycleActionHeartbeat with a pending action -> 200, empty result parses",
              answer["ResponseMetadata"]["HTTPStatusCode"] == 200 and set(answer) == {"ResponseMetadata"})
        failure = error_of(lambda: asg.record_lifecycle_action_heartbeat(
            AutoScalingGroupName=GROUP, LifecycleHookName=HOOK, InstanceId=INSTANCE, LifecycleActionToken="not-the-token"))
        check("a token sent for a token-less pending action is refused", failure and failure[0] == "ValidationError", failure)
        failure = error_of(lambda: asg.record_lifecycle_action_heartbeat(AutoScalingGroupName=GROUP, LifecycleHookName=LAUNCH_HOOK,
                                                                         InstanceId=INSTANCE))
        check("a heartbeat naming another hook is refused", failure == ("ValidationError", 400, NO_ACTIVE), failure)
        failure = error_of(lambda: asg.complete_lifecycle_action(AutoScalingGroupName=GROUP, LifecycleHookName=HOOK,
                                                                 InstanceId=INSTANCE))
        check("CompleteLifecycleAction without LifecycleActionResult -> ValidationError",
              failure and failure[:2] == ("ValidationError", 400), failure)
        failure = error_of(lambda: asg.complete_lifecycle_action(AutoScalingGroupName=GROUP, LifecycleHookName=HOOK,
                                                                 InstanceId=INSTANCE, LifecycleActionResult="MAYBE"))
        check("CompleteLifecycleAction with result MAYBE -> ValidationError", failure and failure[0] == "ValidationError", failure)
        failure = error_of(lambda: asg.complete_lifecycle_action(AutoScalingGroupName=GROUP, LifecycleHookName=HOOK,
                                                                 LifecycleActionResult="CONTINUE"))
        check("CompleteLifecycleAction with neither InstanceId nor token -> ValidationError",
              failure and failure[0] == "ValidationError", failure)

        # faults: the brief's list; faulted calls change nothing
        fake.control({"autoscaling_faults": [
            {"action": "CompleteLifecycleAction", "count": 2, "status": 500, "code": "InternalFailure", "message": "boom"},
            {"action": "RecordLifecycleActionHeartbeat", "count": 1, "status": 400, "code": "Throttling", "message": "Rate exceeded"},
            {"action": "CompleteLifecycleAction", "count": 2, "status": 400, "code": "ValidationError", "message": NO_ACTIVE}]})
        complete = lambda: asg.complete_lifecycle_action(AutoScalingGroupName=GROUP, LifecycleHookName=HOOK,  # noqa: E731
                                                         InstanceId=INSTANCE, LifecycleActionResult="CONTINUE")
        heartbeat = lambda: asg.record_lifecycle_action_heartbeat(AutoScalingGroupName=GROUP, LifecycleHookName=HOOK,  # noqa: E731
                                                                  InstanceId=INSTANCE)
        outcomes = [error_of(complete) for _ in range(4)]
        check("faults: 2 x InternalFailure 500, then 2 x 'No active Lifecycle Action found' 400",
              outcomes == [("InternalFailure", 500, "boom")] * 2 + [("ValidationError", 400, NO_ACTIVE)] * 2, outcomes)
        outcomes = [error_of(heartbeat), error_of(heartbeat)]
        check("faults: heartbeat Throttling once, then served", outcomes == [("Throttling", 400, "Rate exceeded"), None], outcomes)
        state = fake.control()
        check("faulted calls changed no state: the action is still pending, nothing completed",
              len(state["autoscaling"]["pending"]) == 1 and state["completions"] == []
              and state["autoscaling"]["pending"][0]["heartbeats"] == 2 and state["autoscaling_faults"] == [])
        check("CompleteLifecycleAction CONTINUE -> 200, empty result", error_of(complete) is None)
        check("a second CompleteLifecycleAction -> 'No active Lifecycle Action found'",
              error_of(complete) == ("ValidationError", 400, NO_ACTIVE))
        check("a heartbeat after completion -> 'No active Lifecycle Action found'",
              error_of(heartbeat) == ("ValidationError", 400, NO_ACTIVE))
        state = fake.control()
        completion = state["completions"]
        check("completions log: instance, group, hook, result, token, time",
              len(completion) == 1 and {k: v for k, v in completion[0].items() if k != "time"}
              == {"instance": INSTANCE, "group": GROUP, "hook": HOOK, "result": "CONTINUE", "token": None}
              and abs(completion[0]["time"] - time.time()) < 30, completion)
        check("completing leaves a state without ':Wait' alone (InService)",
              state["autoscaling"]["instances"][INSTANCE]["state"] == "InService")

        # tokens, ABANDON, launch hook; Wait -> Proceed
        fake.control({"autoscaling": {"pending": [{"instance": OTHER, "hook": LAUNCH_HOOK, "token": "5d6a8f3e-1111-2222-3333-444455556666"}]}})
        failure = error_of(lambda: asg.complete_lifecycle_action(AutoScalingGroupName=GROUP, LifecycleHookName=LAUNCH_HOOK,
                                                                 LifecycleActionToken="wrong", LifecycleActionResult="ABANDON"))
        check("a wrong token -> 'No active Lifecycle Action found with token'",
              failure == ("ValidationError", 400, "No active Lifecycle Action found with token wrong"), failure)
        check("Complete ABANDON by token alone",
              error_of(lambda: asg.complete_lifecycle_action(AutoScalingGroupName=GROUP, LifecycleHookName=LAUNCH_HOOK,
                                                             LifecycleActionToken="5d6a8f3e-1111-2222-3333-444455556666",
                                                             LifecycleActionResult="ABANDON")) is None)
        state = fake.control()
        check("token completion logged; Pending:Wait -> Pending:Proceed",
              state["completions"][-1]["token"] == "5d6a8f3e-1111-2222-3333-444455556666"
              and state["completions"][-1]["instance"] == OTHER and state["completions"][-1]["result"] == "ABANDON"
              and state["autoscaling"]["instances"][OTHER]["state"] == "Pending:Proceed")

        # botocore standard retries classify the fault errors as retryable
        retrying = fake.client(creds["AccessKeyId"], creds["SecretAccessKey"], creds["Token"], attempts=3)
        before = len(fake.control()["autoscaling_calls"])
        fake.control({"autoscaling_faults": [{"action": "DescribeLifecycleHooks", "count": 1, "status": 500, "code": "InternalFailure"},
                                             {"action": "*", "count": 1, "status": 400, "code": "Throttling", "message": "Rate exceeded"}]})
        with mock.patch("time.sleep"):
            hooks = retrying.describe_lifecycle_hooks(AutoScalingGroupName=GROUP)["LifecycleHooks"]
        calls = fake.control()["autoscaling_calls"][before:]
        check("botocore retries InternalFailure 500 and Throttling, then succeeds (3 calls logged)",
              len(hooks) == 2 and [(c["status"], c["code"], c["injected"]) for c in calls]
              == [(500, "InternalFailure", True), (400, "Throttling", True), (200, None, False)], calls)

        # -- the Query protocol itself (hand-built, botocore-signed)
        key, secret, token = creds["AccessKeyId"], creds["SecretAccessKey"], creds["Token"]
        status, answer, headers = fake.raw(b"Action=DescribeNothing&Version=2011-01-01", key, secret, token)
        shape = query_error_code(answer)
        check("unknown Action -> 400 InvalidAction in an awsQuery ErrorResponse",
              status == 400 and shape[0] == "{http://autoscaling.amazonaws.com/doc/2011-01-01/}ErrorResponse"
              and shape[1:3] == ("Sender", "InvalidAction") and shape[3] == headers.get("x-amzn-RequestId"), (status, answer))
        status, answer, _ = fake.raw(b"Action=DescribeAutoScalingInstances&Version=2010-08-01", key, secret, token)
        check("wrong Version -> 400 InvalidAction", status == 400 and query_error_code(answer)[2] == "InvalidAction")
        status, answer, _ = fake.raw(b"Version=2011-01-01", key, secret, token)
        check("no Action -> 400 MissingAction", status == 400 and query_error_code(answer)[2] == "MissingAction")
        status, answer, _ = fake.raw(b"Action=DescribeAutoScalingInstances&Version=2011-01-01&InstanceIds.member.1=" +
                                     INSTANCE.encode(), key, secret, token)
        check("a raw Query POST answers the AWS response shape",
              status == 200 and answer.startswith(b'<DescribeAutoScalingInstancesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">')
              and b"<DescribeAutoScalingInstancesResult>" in answer and b"<ResponseMetadata>" in answer, answer)
        status, answer, _ = fake.raw(b"Action=DescribeAutoScalingInstances&Version=2011-01-01", key, secret, token, sign=False)
        check("unsigned -> 403 MissingAuthenticationToken", status == 403 and query_error_code(answer)[2] == "MissingAuthenticationToken")
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
        status, answer, _ = fake.raw(b"Action=DescribeAutoScalingInstances&Version=2011-01-01", key, secret, token, when=old)
        check("dated 6 minutes ago -> 400 RequestExpired", status == 400 and query_error_code(answer)[2] == "RequestExpired", answer)
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=6)
        status, answer, _ = fake.raw(b"Action=DescribeAutoScalingInstances&Version=2011-01-01", key, secret, token, when=future)
        check("dated 6 minutes ahead -> 400 RequestExpired", status == 400 and query_error_code(answer)[2] == "RequestExpired")
        recent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=4)
        status, answer, _ = fake.raw(b"Action=DescribeAutoScalingInstances&Version=2011-01-01", key, secret, token, when=recent)
        check("dated 4 minutes ago -> served", status == 200, answer)
        status, answer, _ = fake.raw(b"Action=DescribeAutoScalingInstances&Version=2011-01-01", key, secret, token,
                                     extra_headers={"X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()})
        check("X-Amz-Content-Sha256 not the body's hash -> 403 SignatureDoesNotMatch",
              status == 403 and query_error_code(answer)[2] == "SignatureDoesNotMatch", answer)
        status, answer, _ = fake.raw(b"Action=DescribeAutoScalingInstances&Version=2011-01-01", key, secret, token,
                                     extra_headers={"X-Amz-Content-SHA256": hashlib.sha256(
                                         b"Action=DescribeAutoScalingInstances&Version=2011-01-01").hexdigest()})
        check("a correct X-Amz-Content-Sha256 -> served", status == 200, answer)

        # -- signatures and keys through boto3
        def tamper_signature(request, **_):
            value = request.headers["Authorization"]
            value = value.decode() if isinstance(value, bytes) else value
            last = value[-1]
            request.headers["Authorization"] = value[:-1] + ("0" if last != "0" else "1")
        tampered = fake.client(key, secret, token)
        tampered.meta.events.register("before-send", tamper_signature)
        failure = error_of(lambda: tampered.describe_auto_scaling_instances(InstanceIds=[INSTANCE]))
        check("a tampered signature -> 403 SignatureDoesNotMatch", failure and failure[:2] == ("SignatureDoesNotMatch", 403), failure)

        def tamper_body(request, **_):
            body = request.body if isinstance(request.body, bytes) else request.body.encode()
            request.body = body.replace(INSTANCE.encode(), OTHER.encode())
        tampered_body = fake.client(key, secret, token)
        tampered_body.meta.events.register("before-send", tamper_body)
        failure = error_of(lambda: tampered_body.describe_auto_scaling_instances(InstanceIds=[INSTANCE]))
        check("a body changed after signing -> 403 SignatureDoesNotMatch", failure and failure[:2] == ("SignatureDoesNotMatch", 403), failure)
        failure = error_of(lambda: fake.client(key, secret[:-1] + ("A" if secret[-1] != "A" else "B"), token)
                           .describe_auto_scaling_instances())
        check("a wrong secret -> 403 SignatureDoesNotMatch", failure and failure[:2] == ("SignatureDoesNotMatch", 403), failure)
        failure = error_of(lambda: fake.client(key, secret, token, region="us-west-2").describe_auto_scaling_instances())
        check("signed for another region -> 403 SignatureDoesNotMatch", failure and failure[:2] == ("SignatureDoesNotMatch", 403), failure)
        failure = error_of(lambda: fake.client("ASIAUNKNOWNKEY000000", secret, token).describe_auto_scaling_instances())
        check("an unknown access key -> 403 InvalidClientTokenId", failure and failure[:2] == ("InvalidClientTokenId", 403), failure)
        failure = error_of(lambda: fake.client(key, secret, token + "x").describe_auto_scaling_instances())
        check("another session token -> 403 ExpiredToken", failure and failure[:2] == ("ExpiredToken", 403), failure)
        failure = error_of(lambda: fake.client(key, secret).describe_auto_scaling_instances())
        check("no session token for a role key -> 403 InvalidClientTokenId", failure and failure[:2] == ("InvalidClientTokenId", 403), failure)

        # -- the calls log
        calls = fake.control()["autoscaling_calls"]
        keys = {"action", "params", "time", "monotonic", "access_key_id", "signature_ok", "status", "code", "injected"}
        check("calls log: every call logged with its keys", all(set(c) == keys for c in calls) and len(calls) >= 40, len(calls))
        check("calls log: times and monotonic times ascend",
              all(a["monotonic"] <= b["monotonic"] for a, b in zip(calls, calls[1:])) and abs(calls[-1]["time"] - time.time()) < 60)
        refused = [c for c in calls if c["status"] == 403]
        check("calls log: refused calls logged with signature_ok false and their code",
              refused and all(not c["signature_ok"] for c in refused)
              and {"SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken", "MissingAuthenticationToken"}
              <= {c["code"] for c in refused})
        first = calls[0]
        check("calls log: action, params and key of a call",
              first["action"] == "DescribeAutoScalingInstances" and first["params"] == {"Version": "2011-01-01",
                                                                                         "InstanceIds.member.1": INSTANCE}
              and first["access_key_id"] == key and first["signature_ok"] and first["status"] == 200, first)
        complete_calls = [c for c in calls if c["action"] == "CompleteLifecycleAction"]
        check("calls log: CompleteLifecycleAction params as sent",
              complete_calls[-1]["params"].get("LifecycleActionResult") == "ABANDON"
              and "LifecycleActionToken" in complete_calls[-1]["params"])

        # -- credentials rotation and reject_old_keys
        fake.control({"expire_now": True})
        rotated = fake.imds_credentials()
        check("expire_now: the next IMDS fetch rotates the keys", rotated["AccessKeyId"] != key)
        new = fake.client(rotated["AccessKeyId"], rotated["SecretAccessKey"], rotated["Token"])
        check("old and new role keys both accepted by default",
              error_of(lambda: asg.describe_auto_scaling_instances()) is None and error_of(lambda: new.describe_auto_scaling_instances()) is None)
        fake.control({"reject_old_keys": True})
        failure = error_of(lambda: asg.describe_auto_scaling_instances())
        check("reject_old_keys: the rotated-away key -> 403 InvalidClientTokenId", failure and failure[:2] == ("InvalidClientTokenId", 403), failure)
        check("reject_old_keys: the current key is served", error_of(lambda: new.describe_auto_scaling_instances()) is None)
        fake.control({"expire_now": True})
        failure = error_of(lambda: new.describe_auto_scaling_instances())
        check("reject_old_keys: the current key once expired -> InvalidClientTokenId", failure and failure[0] == "InvalidClientTokenId", failure)
        third = fake.imds_credentials()
        newest = fake.client(third["AccessKeyId"], third["SecretAccessKey"], third["Token"])
        check("reject_old_keys: after refetching, the newest key is served and the previous refused",
              error_of(lambda: newest.describe_auto_scaling_instances()) is None
              and error_of(lambda: new.describe_auto_scaling_instances())[0] == "InvalidClientTokenId")
        fake.control({"reject_old_keys": False})
        check("reject_old_keys false: the first key is accepted again", error_of(lambda: asg.describe_auto_scaling_instances()) is None)

        # -- botocore's own IMDS credential provider against the fake
        with tempfile.TemporaryDirectory() as empty:
            environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
            environment.update({"AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.endpoint + "/",
                                "AWS_CONFIG_FILE": os.path.join(empty, "config"),
                                "AWS_SHARED_CREDENTIALS_FILE": os.path.join(empty, "credentials"),
                                "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
            with mock.patch.dict(os.environ, environment, clear=True):
                session = boto3.Session(botocore_session=botocore.session.Session())
                found = session.get_credentials()
                sdk = session.client("autoscaling", endpoint_url=fake.endpoint, region_name=REGION,
                                     config=Config(retries={"total_max_attempts": 1}))
                answer = sdk.describe_auto_scaling_instances(InstanceIds=[INSTANCE])
        check("botocore's IMDS provider gets the fake's role keys, and its signed call is served",
              found is not None and found.method == "iam-role" and found.access_key == third["AccessKeyId"]
              and answer["AutoScalingInstances"][0]["AutoScalingGroupName"] == GROUP, found and found.method)

        # -- thread safety
        fake.control({"autoscaling": {"pending": [{"instance": INSTANCE, "hook": HOOK}]}, "reset_counters": True})

        def beat(_):
            return error_of(lambda: newest.record_lifecycle_action_heartbeat(AutoScalingGroupName=GROUP, LifecycleHookName=HOOK,
                                                                             InstanceId=INSTANCE))
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(beat, range(96)))
        state = fake.control()
        check("96 concurrent heartbeats: all served, all counted and logged",
              outcomes == [None] * 96 and state["autoscaling"]["pending"][0]["heartbeats"] == 96
              and len(state["autoscaling_calls"]) == 96, (outcomes[:3], state["autoscaling"]["pending"]))

        # -- autoscaling_reset, and IMDS unchanged
        fake.control({"autoscaling_reset": True})
        state = fake.control()
        check("autoscaling_reset forgets state, faults and logs",
              state["autoscaling"] == {"instances": {}, "hooks": {}, "pending": []} and state["autoscaling_calls"] == []
              and state["completions"] == [] and state["autoscaling_faults"] == [] and not state["reject_old_keys"])
        check("after reset: not in a group", newest.describe_auto_scaling_instances(InstanceIds=[INSTANCE])["AutoScalingInstances"] == [])
        status, token, _ = fake.http("PUT", "/latest/api/token", b"", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        status2, value, _ = fake.http("GET", "/latest/meta-data/autoscaling/target-lifecycle-state",
                                      headers={"X-aws-ec2-metadata-token": token.decode()})
        check("IMDS control paths still served (autoscaling/target-lifecycle-state)", (status, status2, value) == (200, 200, b"Terminated"))
        counters = fake.control()
        check("IMDS counters keep their keys", {"token_puts", "token_ttls", "bad_token_puts", "gets_with_token", "gets_without_token",
                                                "unauthorized", "failures_served", "credential_fetches", "access_keys_served",
                                                "requests"} <= set(counters))
        status, _, _ = fake.http("POST", "/latest/api/token", b"")
        check("POST to other paths still 405", status == 405)
        status, answer, _ = fake.http("POST", "/__control__", b'{"autoscaling": {"hooks": {"G": [{"name": "H", "transition": "nope"}]}}}')
        check("a bad control request -> 400", status == 400)
    finally:
        fake.stop()


def static_key_tests():
    fake = Fake("--region", REGION, "--access-key-id", "AKIDSTATICEXAMPLE", "--secret-access-key", "static/secret+KEY")
    try:
        fake.control({"autoscaling": {"instances": {INSTANCE: {"group": GROUP}}}})
        static = fake.client("AKIDSTATICEXAMPLE", "static/secret+KEY")
        answer = static.describe_auto_scaling_instances(InstanceIds=[INSTANCE])
        check("static --access-key-id/--secret-access-key without token: served",
              answer["AutoScalingInstances"][0]["LifecycleState"] == "InService")
        failure = error_of(lambda: fake.client("AKIDSTATICEXAMPLE", "static/secret+KEY", "sometoken").describe_auto_scaling_instances())
        check("static key with a session token it does not have -> ExpiredToken", failure and failure[0] == "ExpiredToken", failure)
        failure = error_of(lambda: fake.client("AKIDSTATICEXAMPLE", "wrong").describe_auto_scaling_instances())
        check("static key, wrong secret -> SignatureDoesNotMatch", failure and failure[0] == "SignatureDoesNotMatch", failure)
        served = fake.imds_credentials()
        via_imds = fake.client(served["AccessKeyId"], served["SecretAccessKey"], served["Token"])
        check("the static key as IMDS serves it (with its IMDS token) is served too",
              served["AccessKeyId"] == "AKIDSTATICEXAMPLE" and error_of(lambda: via_imds.describe_auto_scaling_instances()) is None)
    finally:
        fake.stop()
    fake = Fake("--region", REGION, "--access-key-id", "AKIDSTATICEXAMPLE", "--secret-access-key", "s3cret",
                "--token", "static-session-token")
    try:
        check("static key with --token: served with it",
              error_of(lambda: fake.client("AKIDSTATICEXAMPLE", "s3cret", "static-session-token").describe_auto_scaling_instances()) is None)
        failure = error_of(lambda: fake.client("AKIDSTATICEXAMPLE", "s3cret").describe_auto_scaling_instances())
        check("static key with --token: sent without it -> InvalidClientTokenId", failure and failure[0] == "InvalidClientTokenId", failure)
    finally:
        fake.stop()


def main():
    os.environ.setdefault("NO_PROXY", "127.0.0.1")
    os.environ.setdefault("no_proxy", "127.0.0.1")
    for section in (unit_vectors, server_tests, static_key_tests):
        try:
            section()
        except Exception as error:  # a crash in a section is one more failure, not the end of the run
            check(f"{section.__name__} ran to its end", False, f"{type(error).__name__}: {error}")
    failed = [name for name, good in results if not good]
    print(f"\n{len(results) - len(failed)}/{len(results)} checks passed" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
