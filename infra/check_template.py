"""Checks that infra/template.yaml (the refresh stack) and infra/publisher.yaml (the
publisher, in production's account) match the code they deploy.

Usage: check_template.py [--self-test]   (exits 1 listing every mismatch)
--self-test breaks a copy of each template in each way below and requires each caught.

The refresh stack:

- every handler binary has exactly one function (BuildProperties.Binary), and no
  function names a binary that does not exist;
- each function is given exactly the environment variables its main.rs reads (the test
  stack, the demo and the benchmark take the names from here: tests/src/environment.rs),
  and docs/handlers.md's environment table names each with the handlers given it;
- each state machine's DefinitionSubstitutions are exactly the ${...} placeholders of its
  ASL file, each pointing at the function of the matching binary, and the state machine
  may invoke exactly those functions;
- no IAM statement of a function or role allows a wildcard action; RDS changes are
  allowed only on `dblab-refresh-*` instances and clusters (or on the inputs a restore
  reads), and on `dblab-refresh-*` snapshots only the copy-in (restore) and its deletion
  (delete-clone); secrets can be read only from the SecretArns parameter;
- KMS: restore and check-available may kms:CreateGrant (only with
  kms:GrantIsForAWSResource) and kms:DescribeKey on the SourceKmsKeyArns and CopyKmsKeyArn
  keys, and the restore Decrypt/ReEncrypt*/GenerateDataKeyWithoutPlaintext on the source
  keys through RDS only (the copy-in), and nothing else; kms:Decrypt only on SecretsKmsKeyArn (and the topic's own key for publishing); no
  other KMS right anywhere;
- the functions placed in a VPC have an interface endpoint (behind CreateVpcEndpoints)
  for every AWS service they call;
- the scheduled sweep sends delete-clone a sweep request;
- alarms can fire (`check_alarms`, both templates; each state machine's failed executions
  alarm): a topic an alarm publishes to is
  unencrypted or under a key of the template whose policy admits CloudWatch (never the
  AWS managed aws/sns); metric math over several metrics FILLs each gap, so one event
  alone fires; a log metric filter's function logs at a level that keeps the line it
  counts (the line's level read from the code);
- parameters IAM compares case-sensitively (source and snapshot ARNs, the publisher's
  identifiers) accept lower case only, and `SecretArns` only full secret ARNs (a partial
  one IAM would deny): each pattern is tried on examples;
- failures no one would hear otherwise: each Lambda function a schedule invokes (an
  asynchronous invocation, whose errors never reach the schedule's dead-letter queue)
  sends failed invocations to an alarmed queue; each EventBridge rule target has an
  alarmed dead-letter queue that the queue's policy lets EventBridge write to, for that
  rule; an alarm hears hours without a freshness pass, which record counts;
- the handler list is the workspace's: the Makefile's HANDLERS, the test stack's
  FUNCTIONS (tests/src/stack.rs) and the benchmark's HANDLERS (tests/src/bench/mod.rs)
  name exactly the handler binaries of the workspace.

The publisher (`check_publisher`):
- one function, building publish-snapshot, given exactly the variables its code reads,
  its copy key the stack's own, its share accounts the RefreshAccountIds parameter and its
  name the stack's; one
  pass at a time (reserved concurrency 1);
- started by RDS's automated snapshot events (RDS-EVENT-0091 for instances, -0169 for
  clusters) and by a fallback schedule;
- its IAM: snapshot metadata of its own account; copies from the listed databases'
  automated snapshots (a slot per database, as many as the code accepts) to
  `dblab-share-*` only, tagged only as it makes them; sharing and deleting `dblab-share-*` only while tagged
  ManagedBy=dblab-refresh-publisher; KMS grants through RDS on the copy key and the
  listed database keys; nothing else (no database is described, changed or connected to);
- the copy key lets the refresh account only decrypt, re-encrypt and grant through RDS,
  and describe it.
"""

import copy
import json
import re
import sys
import tomllib
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
NOT_HANDLERS = {"dblab-emulator", "dblab-refresh", "refresh-core", "refresh-tests"}
# Deployed by infra/publisher.yaml, in production's account, not by the refresh stack.
PUBLISHER_BINARY = "publish-snapshot"
MUTATING_RDS = re.compile(r"^rds:(Restore|Create|Copy|Modify|Delete|AddTags|RemoveTags|Reboot|Stop|Start|Promote|Failover)")
SHARED_RESTORES = ("rds:RestoreDBInstanceFromDBSnapshot", "rds:RestoreDBClusterFromSnapshot", "rds:CopyDBSnapshot")
# A shared encrypted snapshot copied in (by the restore) and deleted with its clone (by delete-clone).
OUR_COPIES = {"RestoreFunction": ("rds:CopyDBSnapshot", "rds:AddTagsToResource"), "DeleteCloneFunction": ("rds:DeleteDBSnapshot",)}
RESTORE_INPUTS = (":snapshot:*", ":cluster-snapshot:*", ":og:*", ":pg:*", ":cluster-pg:*", ":subgrp:*", ":secgrp:*")
POINT_IN_TIME = ("rds:RestoreDBInstanceToPointInTime", "rds:RestoreDBClusterToPointInTime")
errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


def handler_binaries() -> dict[str, Path]:
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    found = {}
    for member in workspace["workspace"]["members"]:
        manifest = tomllib.loads((ROOT / member / "Cargo.toml").read_text())
        if manifest["package"]["name"] in NOT_HANDLERS:
            continue
        for binary in manifest.get("bin", []):
            if binary["name"] != PUBLISHER_BINARY:
                found[binary["name"]] = ROOT / member
    return found


def kebab(substitution: str) -> str:
    """RecordFunctionArn -> record, FindSnapshotFunctionArn -> find-snapshot."""
    stem = substitution.removesuffix("FunctionArn")
    return re.sub(r"(?<!^)([A-Z])", r"-\1", stem).lower()


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(policies) -> list[dict]:
    """Every inline statement in a SAM Policies list or an IAM Policies list."""
    out = []
    for policy in as_list(policies or []):
        if isinstance(policy, dict) and "Fn::If" in policy:
            for branch in policy["Fn::If"][1:]:
                out.extend(statements([branch]))
            continue
        if not isinstance(policy, dict):
            continue
        document = policy.get("PolicyDocument", policy)
        out.extend(as_list(document.get("Statement", [])))
    return out


def resource_texts(resource) -> list[str]:
    texts = []
    for item in as_list(resource):
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and "Fn::Sub" in item:
            sub = item["Fn::Sub"]
            texts.append(sub if isinstance(sub, str) else sub[0])
        else:
            texts.append(json.dumps(item, default=str))
    return texts


def check_statement(owner: str, statement: dict) -> None:
    actions = [str(a) for a in as_list(statement.get("Action", []))]
    resources = resource_texts(statement.get("Resource", []))
    for action in actions:
        if action == "*" or action.endswith(":*"):
            fail(f"{owner}: wildcard action {action}")
        if MUTATING_RDS.match(action):
            # A point-in-time restore names its source: only the sources the operator listed.
            if statement.get("Resource") == {"Ref": "PointInTimeSourceArns"}:
                if action not in POINT_IN_TIME:
                    fail(f"{owner}: {action} allowed on the point-in-time sources")
                continue
            # Another account's shared snapshots: restored from, by the restore only.
            if statement.get("Resource") == {"Ref": "SharedSnapshotArns"}:
                if action not in SHARED_RESTORES or owner != "RestoreFunction":
                    fail(f"{owner}: {action} allowed on the shared snapshots")
                continue
            for resource in resources:
                if resource.endswith(":snapshot:dblab-refresh-*"):
                    if action not in OUR_COPIES.get(owner, ()):
                        fail(f"{owner}: {action} allowed on {resource}")
                    continue
                ours = resource.endswith(":db:dblab-refresh-*") or resource.endswith(":cluster:dblab-refresh-*")
                if action.startswith("rds:Copy") or (not ours and not resource.endswith(RESTORE_INPUTS)):
                    fail(f"{owner}: {action} allowed on {resource}")
                if resource.endswith(RESTORE_INPUTS) and not action.startswith(("rds:Restore", "rds:CreateDBInstance")):
                    fail(f"{owner}: {action} allowed on {resource}")
        if action == "secretsmanager:GetSecretValue" and statement.get("Resource") != {"Ref": "SecretArns"}:
            fail(f"{owner}: secrets readable beyond the SecretArns parameter")
        check_kms(owner, action, statement)


# KMS rights: decrypting the secrets (their key), publishing to the encrypted topic (its
# key), and the grants an encrypted clone needs (the source keys, for RDS only); nothing else.
KMS_SOURCE_KEY_ROLES = ("RestoreFunction", "CheckAvailableFunction")
KMS_COPY_IN_RIGHTS = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKeyWithoutPlaintext")


def check_kms(owner: str, action: str, statement: dict) -> None:
    if not action.startswith("kms:"):
        return
    resource = statement.get("Resource")
    if action == "kms:Decrypt" and resource == {"Ref": "SecretsKmsKeyArn"}:
        return
    # Publishing to the notification topic, which is encrypted with the stack's own key.
    if action in ("kms:GenerateDataKey", "kms:Decrypt") and resource == {"Fn::GetAtt": ["NotificationKey", "Arn"]}:
        return
    # The copy-in of a shared encrypted snapshot re-encrypts it from production's key: the
    # restore only, on the source keys only, through RDS only.
    if action in KMS_COPY_IN_RIGHTS and owner == "RestoreFunction" and resource == {"Ref": "SourceKmsKeyArns"}:
        via = sub_text(statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService", ""))
        if via != "rds.${AWS::Region}.amazonaws.com":
            fail(f"{owner}: {action} on the source keys not only through RDS")
        return
    if action in ("kms:CreateGrant", "kms:DescribeKey") and owner in KMS_SOURCE_KEY_ROLES:
        # This account's key for what comes from production's: the restore copies shared
        # snapshots in and clones RAM-shared clusters under it; check-available adds the
        # writer of such an encrypted clone.
        copy_key = resource == {"Ref": "CopyKmsKeyArn"}
        if resource != {"Ref": "SourceKmsKeyArns"} and not copy_key:
            fail(f"{owner}: {action} beyond the SourceKmsKeyArns and CopyKmsKeyArn parameters")
        condition = statement.get("Condition", {})
        for_aws = condition.get("Bool", {}).get("kms:GrantIsForAWSResource")
        via = sub_text(condition.get("StringEquals", {}).get("kms:ViaService", ""))
        if action == "kms:CreateGrant" and (for_aws not in (True, "true") or via != "rds.${AWS::Region}.amazonaws.com"):
            fail(f"{owner}: kms:CreateGrant without the kms:GrantIsForAWSResource and kms:ViaService (RDS) conditions")
        return
    # The preflight reads who manages the source's key: metadata, on this account's keys.
    # The preflight reads who manages the source's key: metadata, on this account's keys
    # and on the listed source keys (which may be production's account's).
    if action == "kms:DescribeKey" and owner == "FindSnapshotFunction":
        own = sub_text(resource) == "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"
        if not own and resource != {"Ref": "SourceKmsKeyArns"}:
            fail(f"{owner}: kms:DescribeKey beyond this account's keys and SourceKmsKeyArns")
        return
    fail(f"{owner}: {action} is not a KMS right it needs")


# What the functions that may be placed in a VPC call besides the DBLab Engine: with
# CreateVpcEndpoints, each of these services needs an interface endpoint.
PLACED_CALLS = {"find-snapshot": {"rds", "ec2", "secretsmanager", "kms"}, "patch-dblab": {"secretsmanager"}, "poll-refresh": {"secretsmanager"}}


def check_vpc_endpoints(resources: dict, functions: dict) -> None:
    placed = {binary for name, binary in functions.items() if "VpcConfig" in resources[name]["Properties"]}
    if placed != set(PLACED_CALLS):
        fail(f"functions placed in a VPC are {sorted(placed)}, expected {sorted(PLACED_CALLS)}")
    wanted = set().union(*PLACED_CALLS.values())
    found = set()
    for name, resource in resources.items():
        if resource["Type"] != "AWS::EC2::VPCEndpoint":
            continue
        service = resource["Properties"].get("ServiceName", {})
        text = service.get("Fn::Sub", "") if isinstance(service, dict) else str(service)
        found.add(text.rsplit(".", 1)[-1])
        if resource.get("Condition") != "MakeVpcEndpoints":
            fail(f"{name} is created without the MakeVpcEndpoints condition")
    for service in sorted(wanted - found):
        fail(f"no VPC endpoint for {service}, which a function placed in the VPC calls")


def kms_granted(resources: dict) -> set:
    """The functions that may create grants on the source keys."""
    found = set()
    for name, resource in resources.items():
        for statement in statements(resource.get("Properties", {}).get("Policies")):
            if "kms:CreateGrant" in as_list(statement.get("Action", [])):
                found.add(name)
    return found


def check(template: dict) -> list[str]:
    errors.clear()
    resources = template["Resources"]
    binaries = handler_binaries()

    functions = {}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            if binary not in binaries:
                fail(f"{name} builds {binary!r}, which is not a handler binary")
            elif binary in functions.values():
                fail(f"{binary} is deployed twice")
            functions[name] = binary
    for binary in sorted(set(binaries) - set(functions.values())):
        fail(f"handler {binary} has no function in the template")

    for name, binary in functions.items():
        if binary not in binaries:
            continue
        wanted = set(re.findall(r'env\("([A-Z_]+)"\)', (binaries[binary] / "src/main.rs").read_text()))
        defined = set(resources[name]["Properties"].get("Environment", {}).get("Variables", {}))
        for variable in sorted(wanted - defined):
            fail(f"{name} ({binary}) reads {variable}, which the template does not set")
        for variable in sorted(defined - wanted):
            fail(f"{name} ({binary}) is given {variable}, which its main.rs does not read")

    by_binary = {binary: name for name, binary in functions.items()}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        properties = resource["Properties"]
        asl = (ROOT / "infra" / properties["DefinitionUri"]).resolve()
        placeholders = set(re.findall(r"\$\{(\w+)\}", asl.read_text()))
        substitutions = properties.get("DefinitionSubstitutions", {})
        if placeholders != set(substitutions):
            fail(f"{name}: placeholders {sorted(placeholders)} != substitutions {sorted(substitutions)}")
        invoked = set()
        for key, value in substitutions.items():
            expected = by_binary.get(kebab(key))
            target = value.get("Fn::GetAtt", [None])[0] if isinstance(value, dict) else None
            if target != expected:
                fail(f"{name}: {key} points at {target}, expected {expected}")
            invoked.add(target)
        allowed = {p["LambdaInvokePolicy"]["FunctionName"]["Ref"] for p in properties.get("Policies", []) if isinstance(p, dict) and "LambdaInvokePolicy" in p}
        if allowed != invoked:
            fail(f"{name}: may invoke {sorted(allowed)} but uses {sorted(invoked)}")
        for statement in statements(properties.get("Policies")):
            check_statement(name, statement)

    for name, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            for statement in statements(properties.get("Policies")):
                check_statement(name, statement)
        if resource["Type"] == "AWS::IAM::Role":
            for statement in statements(properties.get("Policies")):
                check_statement(name, statement)

    check_vpc_endpoints(resources, functions)

    if kms_granted(resources) != set(KMS_SOURCE_KEY_ROLES):
        fail(f"kms:CreateGrant on the source keys is held by {sorted(kms_granted(resources))}, not {list(KMS_SOURCE_KEY_ROLES)}")

    sweep = resources.get("ScheduledSweep", {}).get("Properties", {}).get("Target", {})
    if sweep.get("Arn") != {"Fn::GetAtt": ["DeleteCloneFunction", "Arn"]} or json.loads(sweep.get("Input", "{}")).get("mode") != "sweep":
        fail("the scheduled sweep does not send delete-clone a sweep request")

    check_fleet(template)
    check_longest_call(resources, functions)
    check_schedules(resources)
    check_undelivered(resources)
    check_machine_alarms(resources)
    for problem in check_alarms(template) + check_parameter_patterns(template, STACK_PATTERNS):
        fail(problem)
    return list(errors)


def refs(value) -> set:
    """Every resource or parameter a value names by Ref (inside conditions too)."""
    found = set()
    if isinstance(value, dict):
        if "Ref" in value:
            found.add(value["Ref"])
        for item in value.values():
            found |= refs(item)
    elif isinstance(value, list):
        for item in value:
            found |= refs(item)
    return found


def getatt(value):
    return value.get("Fn::GetAtt", [None])[0] if isinstance(value, dict) else None


LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


def log_line_level(message: str):
    """The level the code logs a message at (tracing's macro on the line that holds it)."""
    for path in (ROOT / "crates").rglob("*.rs"):
        for line in path.read_text().splitlines():
            if f'"{message}"' in line:
                macro = re.search(r"\b(trace|debug|info|warn|error)!\(", line)
                if macro:
                    return macro.group(1).upper()
    return None


def check_alarms(template: dict) -> list[str]:
    """What keeps an alarm from ever being heard: a topic CloudWatch cannot publish to,
    metric math that drops a lone event, a metric filter whose line the log level drops."""
    problems = []
    resources = template["Resources"]
    for name, resource in resources.items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        for topic in sorted(refs([properties.get("AlarmActions"), properties.get("OKActions")])):
            key = resources.get(topic, {}).get("Properties", {}).get("KmsMasterKeyId")
            if key is None:
                continue
            policy = resources.get(key.get("Ref") if isinstance(key, dict) else None, {}).get("Properties", {}).get("KeyPolicy", {})
            admitted = any(
                statement.get("Effect") == "Allow"
                and statement.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
                and "kms:Decrypt" in as_list(statement.get("Action"))
                and {"kms:GenerateDataKey", "kms:GenerateDataKey*"} & set(as_list(statement.get("Action")))
                for statement in as_list(policy.get("Statement", []))
            )
            if not admitted:
                problems.append(f"{name} publishes to {topic}, whose key {key} does not admit CloudWatch")
        metrics = properties.get("Metrics", [])
        measured = [m["Id"] for m in metrics if "MetricStat" in m]
        for metric in metrics:
            expression = sub_text(metric.get("Expression", ""))
            for metric_id in measured if len(measured) > 1 else []:
                bare = re.sub(rf"FILL\(\s*{metric_id}\s*,\s*0\s*\)", "", expression)
                if re.search(rf"\b{metric_id}\b", bare):
                    problems.append(f"{name}: {metric_id} is not FILLed in {expression!r}: a period without it has no sum")
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Logs::MetricFilter":
            continue
        properties = resource["Properties"]
        message = re.search(r'\$\.message = "([^"]+)"', properties.get("FilterPattern", ""))
        level = log_line_level(message.group(1)) if message else None
        if level is None:
            problems.append(f"{name}: no code logs the line it counts")
            continue
        group = properties.get("LogGroupName", {}).get("Ref")
        for function, r in resources.items():
            logging = r.get("Properties", {}).get("LoggingConfig", {})
            if r["Type"] != "AWS::Serverless::Function" or logging.get("LogGroup", {}).get("Ref") != group:
                continue
            set_to = logging.get("ApplicationLogLevel")
            most = highest_level(template, set_to)
            if most is None or LEVELS.index(most) > LEVELS.index(level):
                problems.append(f"{name} counts a {level} line, which {function}'s log level {set_to} may drop")
    return problems


def highest_level(template: dict, level):
    """The highest log level a LoggingConfig value can take: a word, the FunctionLogLevel
    parameter (any of its values), or `Fn::If` on a condition over it."""
    if isinstance(level, str):
        return level
    if level == {"Ref": "FunctionLogLevel"}:
        return LEVELS[-1]
    branches = level.get("Fn::If") if isinstance(level, dict) else None
    if not branches:
        return None
    condition = json.dumps(template.get("Conditions", {}).get(branches[0], {}))
    excluded = {word for word in LEVELS if f'"{word}"' in condition}
    # The "else" branch holds when the condition is false: a parameter outside `excluded`.
    high, otherwise = highest_level(template, branches[1]), branches[2]
    if otherwise == {"Ref": "FunctionLogLevel"}:
        remaining = [word for word in LEVELS if word not in excluded]
        low = remaining[-1] if remaining else None
    else:
        low = highest_level(template, otherwise)
    if high is None or low is None:
        return None
    return max(high, low, key=LEVELS.index)


def check_parameter_patterns(template: dict, examples: dict) -> list[str]:
    """Parameters IAM compares case-sensitively, or that IAM cannot match when partial,
    refuse what would fail there: `examples` maps a parameter to (accepted, refused)."""
    problems = []
    for name, (accepted, refused) in examples.items():
        pattern = template.get("Parameters", {}).get(name, {}).get("AllowedPattern")
        if pattern is None:
            problems.append(f"parameter {name} has no AllowedPattern")
            continue
        for value in accepted:
            if not re.fullmatch(pattern, value):
                problems.append(f"parameter {name} refuses {value!r}")
        for value in refused:
            if re.fullmatch(pattern, value):
                problems.append(f"parameter {name} accepts {value!r}, which IAM would not match")
    return problems


STACK_PATTERNS = {
    # A partial secret ARN (no six-character suffix) is denied by IAM.
    "SecretArns": (["arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/pw-AbC12x",
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-pw-??????"],
                   ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-pw", ""]),
    # NAME ENDPOINT TOKEN_SECRET_ARN [plaintext] [insecure]: the functions read the rest.
    "DblabEngines": (["staging https://dblab.internal:2345 arn:aws:secretsmanager:eu-west-1:123456789012:secret:t-AbC12x",
                      "qa http://10.0.3.7:2345/api arn:aws:secretsmanager:eu-west-1:123456789012:secret:q-AbC12x plaintext"],
                     ["https://dblab.internal:2345 arn:aws:secretsmanager:eu-west-1:123456789012:secret:t-AbC12x",
                      "staging https://dblab.internal:2345 arn:aws:secretsmanager:eu-west-1:123456789012:secret:t",
                      "staging https://u:p@dblab:2345 arn:aws:secretsmanager:eu-west-1:123456789012:secret:t-AbC12x",
                      "staging https://dblab:2345 arn:aws:secretsmanager:eu-west-1:123456789012:secret:t-AbC12x verify",
                      ""]),
    "PointInTimeSourceArns": (["arn:aws:rds:eu-west-1:123456789012:db:prod-db", ""],
                              ["arn:aws:rds:eu-west-1:123456789012:db:Prod-DB"]),
    "SharedSnapshotArns": (["arn:aws:rds:eu-west-1:111111111111:snapshot:dblab-share-*", ""],
                           ["arn:aws:rds:eu-west-1:111111111111:snapshot:DBLab-Share-*"]),
}
PUBLISHER_PATTERNS = {
    "InstanceIdentifiers": (["prod-db", ""], ["Prod-DB"]),
    "ClusterIdentifiers": (["aurora-1", ""], ["Aurora-1"]),
}


def check_machine_alarms(resources: dict) -> None:
    """Each state machine's failed executions alarm: the clean-up's own failure too, which
    no other path reports."""
    alarmed = set()
    for resource in resources.values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for metric in resource["Properties"].get("Metrics", []):
            stat = metric.get("MetricStat", {}).get("Metric", {})
            if stat.get("MetricName") == "ExecutionsFailed" and resource["Properties"].get("AlarmActions"):
                alarmed |= refs(stat.get("Dimensions", []))
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::StateMachine" and name not in alarmed:
            fail(f"no alarm on {name}'s failed executions")


def check_undelivered(resources: dict) -> None:
    """Failures that reach no queue by themselves: a scheduled function's own errors (an
    asynchronous invocation) and an event rule's undeliverable target."""
    alarmed = alarmed_queues(resources)
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Scheduler::Schedule":
            continue
        function = getatt(resource["Properties"].get("Target", {}).get("Arn"))
        if resources.get(function, {}).get("Type") != "AWS::Serverless::Function":
            continue
        on_failure = resources[function]["Properties"].get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure", {})
        if getatt(on_failure.get("Destination")) not in alarmed:
            fail(f"{name} invokes {function} asynchronously, and its failures reach no alarmed queue")
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        for target in resource["Properties"].get("Targets", []):
            queue = getatt(target.get("DeadLetterConfig", {}).get("Arn"))
            if queue not in alarmed:
                fail(f"{name}: target {target.get('Id')} has no alarmed dead-letter queue")
                continue
            writable = any(
                r["Type"] == "AWS::SQS::QueuePolicy"
                and {"Ref": queue} in r["Properties"].get("Queues", [])
                and any(
                    st.get("Effect") == "Allow"
                    and st.get("Principal", {}).get("Service") == "events.amazonaws.com"
                    and "sqs:SendMessage" in as_list(st.get("Action"))
                    and getatt(st.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn")) == name
                    for st in as_list(r["Properties"].get("PolicyDocument", {}).get("Statement", []))
                )
                for r in resources.values()
            )
            if not writable:
                fail(f"{name}: EventBridge may not write to {queue} (no queue policy for this rule)")


def alarmed_queues(resources: dict) -> set:
    return {
        getatt(r["Properties"]["Dimensions"][0]["Value"])
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "AWS/SQS" and r["Properties"].get("AlarmActions")
    }


def check_schedules(resources: dict) -> None:
    """Every schedule gives up on a start within the hour (not a day later) into a
    dead-letter queue that alarms; an alarm with OK actions does not turn OK on a late point."""
    queues = set()
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Scheduler::Schedule":
            continue
        target = resource["Properties"].get("Target", {})
        age = target.get("RetryPolicy", {}).get("MaximumEventAgeInSeconds", 86400)
        if age > 3600:
            fail(f"{name} may start a run {age} s late")
        queue = target.get("DeadLetterConfig", {}).get("Arn", {}).get("Fn::GetAtt", [None])[0]
        if queue is None:
            fail(f"{name} has no dead-letter queue")
        queues.add(queue)
    alarmed = alarmed_queues(resources)
    for queue in sorted(q for q in queues - alarmed if q):
        fail(f"dead-letter queue {queue} has no alarm")
    for name, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm" and properties.get("OKActions") and properties.get("TreatMissingData") == "notBreaching":
            fail(f"{name} would send a false OK when a data point is late (TreatMissingData notBreaching with OKActions)")


def seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", str(text))
    if not match:
        return -1
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def check_longest_call(resources: dict, functions: dict) -> None:
    """delete-clone's LONGEST_CALL outlasts every function's timeout by a minute: a stopped
    run's purge looks until a call it had in flight is surely over."""
    timeouts = [resources[name]["Properties"].get("Timeout", 3) for name in functions]
    deleter = next((n for n, b in functions.items() if b == "delete-clone"), None)
    given = resources.get(deleter, {}).get("Properties", {}).get("Environment", {}).get("Variables", {}).get("LONGEST_CALL")
    if seconds(given) < max(timeouts, default=0) + 60:
        fail(f"LONGEST_CALL {given!r} is not the longest function Timeout ({max(timeouts, default=0)} s) and a minute")


def sub_text(value) -> str:
    return value.get("Fn::Sub", "") if isinstance(value, dict) else str(value)


def check_fleet(template: dict) -> None:
    """The fleet's parts agree: the freshness schedule reaches record, which the scheduler
    role may invoke; the one stale alarm queries the namespace record writes to; the
    schedule group and role the CLI needs are outputs."""
    resources = template["Resources"]
    namespace = sub_text(resources.get("RecordFunction", {}).get("Properties", {}).get("Environment", {})
                         .get("Variables", {}).get("METRICS_NAMESPACE", ""))
    if not namespace:
        fail("record has no METRICS_NAMESPACE: no freshness metrics")
    level = resources.get("RecordFunction", {}).get("Properties", {}).get("LoggingConfig", {}).get("ApplicationLogLevel")
    if level not in ("INFO", "DEBUG", "TRACE"):
        fail(f"record's log level {level!r} would filter out its INFO-level metric lines")
    fresh = resources.get("ScheduledFreshness", {}).get("Properties", {}).get("Target", {})
    if fresh.get("Arn") != {"Fn::GetAtt": ["RecordFunction", "Arn"]} or json.loads(fresh.get("Input", "{}")).get("action") != "freshness":
        fail("no schedule sends record the hourly freshness action")
    invokable = []
    for statement in statements(resources.get("SchedulerRole", {}).get("Properties", {}).get("Policies")):
        if "lambda:InvokeFunction" in as_list(statement.get("Action")):
            invokable += as_list(statement.get("Resource"))
    if {"Fn::GetAtt": ["RecordFunction", "Arn"]} not in invokable:
        fail("the scheduler role may not invoke record (the freshness schedule)")
    alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
              and any(f'MAX(Stale) FROM SCHEMA("{namespace}", Target)' in sub_text(m.get("Expression", ""))
                      for m in r["Properties"].get("Metrics", []))]
    if len(alarms) != 1:
        fail(f"expected one alarm on MAX(Stale) over every target in {namespace!r}, found {len(alarms)}")
    counted = "metrics::freshness_pass(" in (ROOT / "crates/record/src/freshness.rs").read_text()
    silent = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
              and r["Properties"].get("MetricName") == "FreshnessPasses" and sub_text(r["Properties"].get("Namespace")) == namespace
              and r["Properties"].get("TreatMissingData") == "breaching" and r["Properties"].get("AlarmActions")]
    if not (counted and silent):
        fail("no alarm hears hours without a freshness pass (FreshnessPasses, missing data breaching)")
    if not any(r["Type"] == "AWS::CloudWatch::Dashboard" and namespace in sub_text(r["Properties"].get("DashboardBody"))
               for r in resources.values()):
        fail("no dashboard shows the fleet's metrics")
    outputs = template.get("Outputs", {})
    if outputs.get("ScheduleGroupName", {}).get("Value") != {"Ref": "RefreshScheduleGroup"}:
        fail("the schedule group is not an output (the CLI finds it there)")
    if outputs.get("SchedulerRoleArn", {}).get("Value") != {"Fn::GetAtt": ["SchedulerRole", "Arn"]}:
        fail("the scheduler role is not an output (the CLI finds it there)")


def broken(template: dict, change) -> dict:
    """A copy of the template with `change` applied to its resources (for the self-tests)."""
    t = copy.deepcopy(template)
    change(t["Resources"])
    return t


def self_test(template: dict) -> int:
    def widen_delete(r):
        statement = r["DeleteCloneFunction"]["Properties"]["Policies"][0]["Statement"][1]
        statement["Resource"] = [{"Fn::Sub": "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:*"}]

    def conditional(r, function, condition):
        policies = r[function]["Properties"]["Policies"]
        return next(p["Fn::If"][1]["Statement"] for p in policies if p.get("Fn::If", [None])[0] == condition)

    def delete_point_in_time_sources(r):
        conditional(r, "RestoreFunction", "HasPointInTimeSources")[0]["Action"].append("rds:DeleteDBInstance")

    def delete_shared_snapshots(r):
        conditional(r, "RestoreFunction", "HasSharedSnapshots")[0]["Action"].append("rds:DeleteDBSnapshot")

    def restore_shared_from_find_snapshot(r):
        conditional(r, "FindSnapshotFunction", "HasSharedSnapshots")[0]["Action"].append(
            "rds:RestoreDBInstanceFromDBSnapshot"
        )

    def source_key_grant(r, index):
        return conditional(r, "RestoreFunction", "HasSourceKmsKeys")[index]

    def grant_without_condition(r):
        source_key_grant(r, 0).pop("Condition")

    def grant_through_any_service(r):
        source_key_grant(r, 0)["Condition"].pop("StringEquals")

    def grant_on_every_key(r):
        source_key_grant(r, 0)["Resource"] = "*"

    def copy_in_rights_outside_rds(r):
        source_key_grant(r, 2).pop("Condition")

    def copy_key_grant_elsewhere(r):
        r["PollRefreshFunction"]["Properties"]["Policies"][0]["Statement"].append(
            {"Effect": "Allow", "Action": ["kms:CreateGrant"], "Resource": {"Ref": "CopyKmsKeyArn"}}
        )

    def delete_any_snapshot(r):
        statement = r["DeleteCloneFunction"]["Properties"]["Policies"][0]["Statement"][2]
        statement["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:snapshot:*"}

    def copy_by_check_available(r):
        r["CheckAvailableFunction"]["Properties"]["Policies"][0]["Statement"][0]["Action"].append("rds:CopyDBSnapshot")

    def kms_for_another_function(r):
        r["PatchDblabFunction"]["Properties"]["Policies"][0]["Statement"].append(
            {"Effect": "Allow", "Action": ["kms:CreateGrant"], "Resource": {"Ref": "SourceKmsKeyArns"}}
        )

    cases = {
        "a placed function's service without an endpoint": lambda r: r.pop("Ec2Endpoint"),
        "a KMS grant without its condition": grant_without_condition,
        "a KMS grant on every key": grant_on_every_key,
        "a KMS grant not through RDS": grant_through_any_service,
        "a placed function without its KMS endpoint": lambda r: r.pop("KmsEndpoint"),
        "KMS rights for a function that needs none": kms_for_another_function,
        "the copy-in key for a function that needs none": copy_key_grant_elsewhere,
        "re-encryption of the source keys outside RDS": copy_in_rights_outside_rds,
        "deletion of any snapshot": delete_any_snapshot,
        "a copy-in outside the restore": copy_by_check_available,
        "a handler without a function": lambda r: r.pop("NotifyFunction"),
        "deletion of a point-in-time source": delete_point_in_time_sources,
        "deletion of a shared snapshot": delete_shared_snapshots,
        "a restore from a shared snapshot outside the restore": restore_shared_from_find_snapshot,
        "RDS deletion beyond our prefix": widen_delete,
        "a wildcard action": lambda r: r["RecordFunction"]["Properties"]["Policies"][0]["Statement"][0].update(Action=["dynamodb:*"]),
        "an invocation not allowed": lambda r: r["RefreshStateMachine"]["Properties"]["Policies"].pop(0),
        "a missing environment variable": lambda r: r["RecordFunction"]["Properties"].pop("Environment"),
        "a variable nobody reads": lambda r: r["NotifyFunction"]["Properties"]["Environment"]["Variables"].update(
            UNREAD="x"
        ),
        "a substitution pointing elsewhere": lambda r: r["RefreshStateMachine"]["Properties"]["DefinitionSubstitutions"].update(
            RecordFunctionArn={"Fn::GetAtt": ["NotifyFunction", "Arn"]}
        ),
        "no hourly freshness schedule": lambda r: r.pop("ScheduledFreshness"),
        "a stale alarm on another namespace": lambda r: r["StaleTargetAlarm"]["Properties"]["Metrics"][0].update(
            Expression={"Fn::Sub": 'SELECT MAX(Stale) FROM SCHEMA("elsewhere", Target)'}
        ),
        "no fleet dashboard": lambda r: r.pop("FleetDashboard"),
        "a schedule that starts a day late": lambda r: r["ScheduledRefresh"]["Properties"]["Target"]["RetryPolicy"].pop(
            "MaximumEventAgeInSeconds"
        ),
        "a schedule without a dead-letter queue": lambda r: r["ScheduledSweep"]["Properties"]["Target"].pop("DeadLetterConfig"),
        "a dead-letter queue nobody hears": lambda r: r.pop("ScheduleDeadLetterAlarm"),
        "a false OK on a late point": lambda r: r["StaleTargetAlarm"]["Properties"].update(TreatMissingData="notBreaching"),
        "a function that outlasts LONGEST_CALL": lambda r: r["PollRefreshFunction"]["Properties"].update(Timeout=900),
        "record's metric lines filtered out": lambda r: r["RecordFunction"]["Properties"]["LoggingConfig"].update(
            ApplicationLogLevel={"Ref": "FunctionLogLevel"}
        ),
        "a lone failure the failure alarm cannot sum": lambda r: r["RefreshFailedAlarm"]["Properties"]["Metrics"][0].update(
            Expression="failures + timeouts + aborts"
        ),
        "the alarm topic under aws/sns": lambda r: r["NotificationTopic"]["Properties"].update(KmsMasterKeyId="alias/aws/sns"),
        "a scheduled sweep whose failure no one hears": lambda r: r["DeleteCloneFunction"]["Properties"].pop("EventInvokeConfig"),
        "the clean-up rule without a dead-letter queue": lambda r: r["StoppedExecutionRule"]["Properties"]["Targets"][0].pop(
            "DeadLetterConfig"
        ),
        "a dead-letter queue EventBridge may not write": lambda r: r.pop("CleanupStartDeadLetterQueuePolicy"),
        "the orphan count blinded by the log level": lambda r: r["DeleteCloneFunction"]["Properties"]["LoggingConfig"].update(
            ApplicationLogLevel={"Ref": "FunctionLogLevel"}
        ),
        "no alarm on a silent freshness pass": lambda r: r.pop("FreshnessSilentAlarm"),
        "no alarm on a failing clean-up": lambda r: r.pop("CleanupFailedAlarm"),
        "a metric FILLed once and used bare": lambda r: r["CleanupFailedAlarm"]["Properties"]["Metrics"][0].update(
            Expression="FILL(failures, 0) + timeouts"
        ),
        "a queue policy that denies EventBridge": lambda r: r["CleanupStartDeadLetterQueuePolicy"]["Properties"][
            "PolicyDocument"
        ]["Statement"][0].update(Effect="Deny"),
    }
    missed = [name for name, change in cases.items() if not check(broken(template, change))]
    parameter_cases = {
        "partial secret ARNs accepted": ("SecretArns", "^arn:.*$"),
        "an engine entry without its token secret accepted": ("DblabEngines", "^.+$"),
        "upper-case source ARNs accepted": ("PointInTimeSourceArns", "^(arn:aws:rds:.*)?$"),
    }
    for name, (parameter, pattern) in parameter_cases.items():
        t = copy.deepcopy(template)
        t["Parameters"][parameter]["AllowedPattern"] = pattern
        if not check(t):
            missed.append(name)
    cases.update(parameter_cases)
    for name in missed:
        print(f"template self-test: {name} was not caught")
    if check(template):
        print("template self-test: the real template must pass")
        return 1
    print(f"template self-test: all {len(cases)} breakages caught")
    return 1 if missed else 0


def handler_lists() -> list[str]:
    """The other places that list the handlers, against the workspace (the one source)."""
    wanted = sorted(handler_binaries())
    problems = []
    make = re.search(r"^HANDLERS := (.*)$", (ROOT / "Makefile").read_text(), re.M)
    listed = sorted(make.group(1).split()) if make else []
    if listed != wanted:
        problems.append(f"Makefile HANDLERS {listed} is not the workspace's handlers {wanted}")
    stack = (ROOT / "tests/src/stack.rs").read_text()
    functions = sorted(re.findall(r'\("\w+FunctionArn", "([\w-]+)"\)', stack))
    if functions != wanted:
        problems.append(f"tests/src/stack.rs FUNCTIONS {functions} is not the workspace's handlers {wanted}")
    bench = re.search(r"pub const HANDLERS: \[&str; \d+\] =\s*\[(.*?)\];", (ROOT / "tests/src/bench/mod.rs").read_text(), re.S)
    measured = sorted(re.findall(r'"([\w-]+)"', bench.group(1))) if bench else []
    if measured != wanted:
        problems.append(f"tests/src/bench/mod.rs HANDLERS {measured} is not the workspace's handlers {wanted}")
    return problems


def environment_docs(templates: list, readme: str) -> list[str]:
    """The handlers' environment table (docs/handlers.md) names each template variable with
    exactly the handlers the templates (the stack's and the publisher's) give it to."""
    given: dict[str, set[str]] = {}
    for resource in [r for template in templates for r in template["Resources"].values()]:
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if resource["Type"] != "AWS::Serverless::Function" or not binary:
            continue
        for variable in resource["Properties"].get("Environment", {}).get("Variables", {}):
            given.setdefault(variable, set()).add(binary)
    section = readme.split("## Environment of the handlers", 1)[-1].split("\n## ", 1)[0]
    documented = {}
    for row in re.finditer(r"^\| `([A-Z_]+)`[^|]*\| ([^|]*) \|", section, re.M):
        documented[row.group(1)] = set(re.findall(r"`([a-z-]+)`", row.group(2)))
    problems = []
    for variable, binaries in sorted(given.items()):
        if variable not in documented:
            problems.append(f"docs/handlers.md's environment table does not list {variable}")
        elif documented[variable] != binaries:
            problems.append(f"docs/handlers.md says {variable} is used by {sorted(documented[variable])}, the template gives it to {sorted(binaries)}")
    return problems

# What the publisher may do, each action with the resources it may name (suffixes of the
# account's ARNs) and whether it must be conditioned on the copy's ManagedBy tag.
SHARE = (":snapshot:dblab-share-*", ":cluster-snapshot:dblab-share-*")
PUBLISHER_RDS = {
    "rds:DescribeDBSnapshots": ((":db:*", ":cluster:*", ":snapshot:*", ":cluster-snapshot:*"), False),
    "rds:DescribeDBClusterSnapshots": ((":db:*", ":cluster:*", ":snapshot:*", ":cluster-snapshot:*"), False),
    "rds:DescribeDBSnapshotAttributes": (SHARE, False),
    "rds:DescribeDBClusterSnapshotAttributes": (SHARE, False),
    "rds:CopyDBSnapshot": ((":snapshot:rds:${Id}-*",) + SHARE, False),
    "rds:CopyDBClusterSnapshot": ((":cluster-snapshot:rds:${Id}-*",) + SHARE, False),
    "rds:AddTagsToResource": (SHARE, True),
    "rds:ModifyDBSnapshotAttribute": (SHARE, True),
    "rds:ModifyDBClusterSnapshotAttribute": (SHARE, True),
    "rds:DeleteDBSnapshot": (SHARE, True),
    "rds:DeleteDBClusterSnapshot": (SHARE, True),
}
PUBLISHER_TAG_KEYS = ("rds:snapshot-tag/ManagedBy", "rds:cluster-snapshot-tag/ManagedBy", "aws:RequestTag/ManagedBy")
PUBLISHER_EVENTS = {"RDS-EVENT-0091", "RDS-EVENT-0169"}
# What the refresh account may do with the copy key: restore a shared copy through RDS.
REFRESH_KEY_RIGHTS = {"kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
                      "kms:ReEncryptTo", "kms:CreateGrant"}
OWN_ARN = "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}"
# The copies' sources: one slot per listed database of a kind, as many as the code allows.
COPY_SOURCES = {"rds:CopyDBSnapshot": "InstanceIdentifiers", "rds:CopyDBClusterSnapshot": "ClusterIdentifiers"}


def copy_source_slots(action: str, resource) -> list[str]:
    """What is wrong with a copy statement's source slots: each names the automated
    snapshots of one listed database of the right kind (slot i = the list's item i), and
    there are exactly as many as the publisher accepts databases of a kind."""
    problems = []
    code = (ROOT / "crates" / PUBLISHER_BINARY / "src/lib.rs").read_text()
    most = re.search(r"const MOST_SOURCES: usize = (\d+);", code)
    slots = [r for r in as_list(resource) if isinstance(r, dict) and isinstance(r.get("Fn::Sub"), list)]
    indices = []
    for slot in slots:
        text = json.dumps(slot["Fn::Sub"][1])
        select = slot["Fn::Sub"][1].get("Id", {}).get("Fn::Select", [None])
        if f'"Ref": "{COPY_SOURCES[action]}"' not in text:
            problems.append(f"{action}: a source slot not read from {COPY_SOURCES[action]}: {text}")
        indices.append(select[0])
    if not most or indices != list(range(int(most.group(1)))):
        problems.append(f"{action}: source slots {indices} are not one per database the publisher accepts")
    return problems


def check_publisher(template: dict) -> list[str]:
    problems = []
    resources = template["Resources"]
    functions = {n: r for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    if len(functions) != 1:
        return [f"the publisher deploys {len(functions)} functions, not one"]
    name, function = next(iter(functions.items()))
    properties = function["Properties"]
    binary = function.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
    if binary != PUBLISHER_BINARY:
        problems.append(f"{name} builds {binary!r}, not {PUBLISHER_BINARY}")
    code = (ROOT / "crates" / PUBLISHER_BINARY / "src/lib.rs").read_text()
    # Settings::from_env reads each variable through `var`, `list` or `lowered`.
    wanted = set(re.findall(r'(?:var|list|lowered)\("([A-Z_]+)"\)', code))
    variables = properties.get("Environment", {}).get("Variables", {})
    if set(variables) != wanted:
        problems.append(f"{name} is given {sorted(variables)}, its code reads {sorted(wanted)}")
    if variables.get("COPY_KMS_KEY_ARN") != {"Fn::GetAtt": ["CopyKey", "Arn"]}:
        problems.append("the copies are not encrypted with the stack's CopyKey")
    if variables.get("SHARE_WITH") != {"Fn::Join": [",", {"Ref": "RefreshAccountIds"}]}:
        problems.append("the copies are shared with other accounts than RefreshAccountIds")
    if variables.get("PUBLISHER") != {"Ref": "AWS::StackName"}:
        problems.append("the publisher's copies are not marked with its stack's name")
    if properties.get("ReservedConcurrentExecutions") != 1:
        problems.append(f"{name} may run more than one pass at a time")

    events = properties.get("Events", {}).values()
    rules = [e["Properties"]["Pattern"] for e in events if e.get("Type") == "EventBridgeRule"]
    heard = {i for p in rules if p.get("source") == ["aws.rds"] for i in p.get("detail", {}).get("EventID", [])}
    if heard != PUBLISHER_EVENTS:
        problems.append(f"the publisher hears RDS events {sorted(heard)}, not {sorted(PUBLISHER_EVENTS)}")
    if not any(e.get("Type") in ("Schedule", "ScheduleV2") for e in events):
        problems.append("no fallback schedule: a snapshot event RDS did not deliver would never be published")

    for statement in statements(properties.get("Policies")):
        actions = [str(a) for a in as_list(statement.get("Action", []))]
        resource = statement.get("Resource")
        texts = resource_texts(resource)
        for action in actions:
            if "*" in action:
                problems.append(f"{name}: wildcard action {action}")
            elif action in PUBLISHER_RDS:
                if action in COPY_SOURCES:
                    problems.extend(f"{name}: {p}" for p in copy_source_slots(action, resource))
                suffixes, tagged = PUBLISHER_RDS[action]
                for text in texts:
                    if not (text.startswith(OWN_ARN) and text[len(OWN_ARN):] in suffixes):
                        problems.append(f"{name}: {action} allowed on {text}")
                condition = statement.get("Condition", {}).get("StringEquals", {})
                if tagged and not any(condition.get(k) == "dblab-refresh-publisher" for k in PUBLISHER_TAG_KEYS):
                    problems.append(f"{name}: {action} not conditioned on ManagedBy=dblab-refresh-publisher")
            elif action in ("kms:CreateGrant", "kms:DescribeKey"):
                if resource not in ({"Fn::GetAtt": ["CopyKey", "Arn"]}, {"Ref": "DatabaseKmsKeyArns"}):
                    problems.append(f"{name}: {action} beyond the copy key and DatabaseKmsKeyArns")
                via = sub_text(statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService", ""))
                if via != "rds.${AWS::Region}.amazonaws.com":
                    problems.append(f"{name}: {action} not only through RDS")
            else:
                problems.append(f"{name}: {action} is not a right the publisher needs")

    problems.extend(check_alarms(template))
    problems.extend(check_parameter_patterns(template, PUBLISHER_PATTERNS))
    errored = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == "Errors"
               and r["Properties"].get("Dimensions", [{}])[0].get("Value") == {"Ref": name}]
    if not errored:
        problems.append(f"no alarm on {name}'s errors: its passes are asynchronous, a failed one is heard nowhere else")

    key = resources.get("CopyKey", {}).get("Properties", {}).get("KeyPolicy", {})
    for statement in as_list(key.get("Statement", [])):
        principal = statement.get("Principal", {}).get("AWS", "")
        if principal != {"Ref": "RefreshAccountIds"}:
            if "RefreshAccountIds" in json.dumps(principal) or "RefreshAccountId" in json.dumps(principal):
                problems.append(f"the copy key names the refresh accounts otherwise: {principal}")
            continue
        actions = set(as_list(statement.get("Action", [])))
        if not actions <= REFRESH_KEY_RIGHTS:
            problems.append(f"the copy key lets the refresh account {sorted(actions - REFRESH_KEY_RIGHTS)}")
        condition = statement.get("Condition", {})
        via = sub_text(condition.get("StringEquals", {}).get("kms:ViaService", ""))
        if actions - {"kms:DescribeKey"} and via != "rds.${AWS::Region}.amazonaws.com":
            problems.append(f"the copy key lets the refresh account {sorted(actions)} outside RDS")
        if "kms:CreateGrant" in actions and condition.get("Bool", {}).get("kms:GrantIsForAWSResource") not in (True, "true"):
            problems.append("the refresh account may create grants on the copy key for anything, not only RDS")
    return problems


def publisher_self_test(template: dict) -> int:
    def policy(r):
        return r["PublishSnapshotFunction"]["Properties"]["Policies"][0]["Statement"]

    def statement_with(r, action):
        return next(s for s in policy(r) if action in as_list(s["Action"]))

    def refresh_key_statement(r, sid):
        return next(s for s in r["CopyKey"]["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == sid)

    def pattern(r):
        return r["PublishSnapshotFunction"]["Properties"]["Events"]["SnapshotCreated"]["Properties"]["Pattern"]

    cases = {
        "a wildcard action": lambda r: policy(r)[0].update(Action=["rds:*"]),
        "a change to a database": lambda r: policy(r)[0]["Action"].append("rds:ModifyDBInstance"),
        "a connection to a database": lambda r: policy(r).append(
            {"Effect": "Allow", "Action": ["rds-db:connect"], "Resource": "*"}
        ),
        "deletion beyond our copies": lambda r: statement_with(r, "rds:DeleteDBSnapshot").update(
            Resource={"Fn::Sub": OWN_ARN + ":snapshot:*"}
        ),
        "deletion without our tag": lambda r: statement_with(r, "rds:DeleteDBClusterSnapshot").pop("Condition"),
        "copies to any name": lambda r: statement_with(r, "rds:CopyDBSnapshot")["Resource"].append(
            {"Fn::Sub": OWN_ARN + ":snapshot:*"}
        ),
        "a grant outside RDS": lambda r: statement_with(r, "kms:CreateGrant").pop("Condition"),
        "the cluster event not heard": lambda r: pattern(r)["detail"].update(EventID=["RDS-EVENT-0091"]),
        "no fallback schedule": lambda r: r["PublishSnapshotFunction"]["Properties"]["Events"].pop("Fallback"),
        "passes that race": lambda r: r["PublishSnapshotFunction"]["Properties"].pop("ReservedConcurrentExecutions"),
        "a variable nobody reads": lambda r: r["PublishSnapshotFunction"]["Properties"]["Environment"]["Variables"].update(
            UNREAD="x"
        ),
        "copies shared with another account": lambda r: r["PublishSnapshotFunction"]["Properties"]["Environment"][
            "Variables"
        ].update(SHARE_WITH="999999999999"),
        "copies not marked with the publisher": lambda r: r["PublishSnapshotFunction"]["Properties"]["Environment"][
            "Variables"
        ].update(PUBLISHER="shared-name"),
        "tagging beyond the copies it makes": lambda r: statement_with(r, "rds:AddTagsToResource").pop("Condition"),
        "copies from any automated snapshot": lambda r: statement_with(r, "rds:CopyDBSnapshot")["Resource"].__setitem__(
            0, {"Fn::Sub": OWN_ARN + ":snapshot:rds:*"}
        ),
        "a cluster slot read from the instances": lambda r: statement_with(r, "rds:CopyDBClusterSnapshot")["Resource"][3][
            "Fn::Sub"
        ][1]["Id"]["Fn::Select"][1]["Fn::Split"][1]["Fn::Join"][1][0]["Fn::Join"].__setitem__(
            1, {"Ref": "InstanceIdentifiers"}
        ),
        "fewer slots than databases": lambda r: statement_with(r, "rds:CopyDBSnapshot")["Resource"].pop(9),
        "the copy key open to the refresh account": lambda r: refresh_key_statement(r, "RefreshAccountDescribesTheKey").update(
            Action="kms:*"
        ),
        "the refresh account's grants not only for RDS": lambda r: refresh_key_statement(
            r, "RefreshAccountGrantsToRds"
        )["Condition"].pop("Bool"),
        "decryption outside RDS": lambda r: refresh_key_statement(r, "RefreshAccountReadsCopiesThroughRds").pop("Condition"),
        "the alarm topic under aws/sns": lambda r: r["AlarmTopic"]["Properties"].update(KmsMasterKeyId="alias/aws/sns"),
        "no alarm on a failed pass": lambda r: r.pop("PublishFailedAlarm"),
    }
    missed = [name for name, change in cases.items() if not check_publisher(broken(template, change))]
    t = copy.deepcopy(template)
    t["Parameters"]["InstanceIdentifiers"].pop("AllowedPattern")
    cases["instance identifiers in any case"] = None
    if not check_publisher(t):
        missed.append("instance identifiers in any case")
    for name in missed:
        print(f"publisher self-test: {name} was not caught")
    if check_publisher(template):
        print("publisher self-test: the real publisher template must pass")
        return 1
    print(f"publisher self-test: all {len(cases)} breakages caught")
    return 1 if missed else 0



def main() -> int:
    lists = handler_lists()
    for message in lists:
        print(f"handlers: {message}")
    template, matches = decode(str(ROOT / "infra/template.yaml"))
    publisher, publisher_matches = decode(str(ROOT / "infra/publisher.yaml"))
    if template is None or publisher is None:
        print("\n".join(str(m) for m in matches + publisher_matches))
        return 1
    if sys.argv[1:] == ["--self-test"]:
        handlers = (ROOT / "docs/handlers.md").read_text()
        planted = handlers.replace("| `TOPIC_ARN` | `notify` |", "| `TOPIC_ARN` | `record` |")
        both = [template, publisher]
        if not environment_docs(both, planted) or environment_docs(both, handlers):
            print("template self-test: an environment row naming the wrong handler was not caught")
            return 1
        return self_test(template) | publisher_self_test(publisher)
    found = check(template) + environment_docs([template, publisher], (ROOT / "docs/handlers.md").read_text())
    for message in found:
        print(f"template: {message}")
    published = check_publisher(publisher)
    for message in published:
        print(f"publisher: {message}")
    if not found:
        print("template: functions, state machines, environment and IAM match the code")
    if not published:
        print("publisher: its function, events, IAM and copy key are what publishing needs and no more")
    return 1 if found or published or lists else 0


if __name__ == "__main__":
    sys.exit(main())
