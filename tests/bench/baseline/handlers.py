"""The benchmark's baseline: the eight handlers written the common way, as Python Lambdas
with boto3 (clients built at import, as AWS's samples do). Each makes the same AWS and
engine calls as its Rust handler for the benchmark's events, with equivalent parameters
(the benchmark compares both sides' calls and fails when they differ), so the two cold
starts compare like for like. Run by awslambdaric through the same local Runtime API as
the Rust binaries (tests/src/bench/); not deployed anywhere.
"""

import datetime
import json
import os
import re
import time
import urllib.request

import boto3

# The clients each Rust handler's main.rs builds at start, built here at import for the
# function the process serves (loading a service's model is most of boto3's start-up).
CLIENTS = {
    "find-snapshot": ("rds", "ec2", "kms", "secretsmanager"),
    "restore": ("rds", "dynamodb"),
    "check-available": ("rds", "dynamodb"),
    "patch-dblab": ("secretsmanager", "dynamodb"),
    "poll-refresh": ("secretsmanager",),
    "delete-clone": ("rds", "stepfunctions"),
    "record": ("dynamodb", "stepfunctions"),
    "notify": ("sns", "dynamodb"),
}
_clients = {name: boto3.client(name) for name in CLIENTS[os.environ["AWS_LAMBDA_FUNCTION_NAME"]]}
rds = _clients.get("rds")
secrets = _clients.get("secretsmanager")
dynamodb = _clients.get("dynamodb")
sns = _clients.get("sns")

MANAGED_BY = "dblab-refresh"
BUSY = ("refreshing", "snapshotting", "pending", "renewed")
# patch-dblab triggers this long after the engine answered its config change, so that the
# refresh's start proves itself later than the change (the Rust handler's PROOF_GAP).
PROOF_GAP = 2.0


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _secret(arn):
    return secrets.get_secret_value(SecretId=arn)["SecretString"]


def _password(request):
    return json.loads(_secret(request["source"]["passwordSecretArn"]))["password"]


class Engine:
    """The engine's API, its token read once per invocation."""

    def __init__(self, request):
        spec = request["dblab"]
        self.endpoint = spec["apiEndpoint"].rstrip("/")
        self.token = _secret(spec["tokenSecretArn"])

    def call(self, method, path, body=None, raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.endpoint + path, data=data, method=method)
        req.add_header("Verification-Token", self.token)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as response:
            text = response.read()
            return text.decode() if raw else json.loads(text or b"null")


def _held(key, execution):
    """The run still holds its lock on `key`."""
    item = dynamodb.get_item(
        TableName=os.environ["HISTORY_TABLE"], Key={"target": {"S": key}, "sk": {"S": "lock"}}, ConsistentRead=True
    ).get("Item", {})
    if item.get("owner", {}).get("S") != execution["name"] or int(item["ttl"]["N"]) < time.time():
        raise RuntimeError("LockLost")


def _clone_name(request, execution):
    target = re.sub(r"[^a-z0-9]+", "-", request["target"].lower()).strip("-")
    started = datetime.datetime.fromisoformat(execution["startedAt"].replace("Z", "+00:00"))
    return "dblab-refresh-%s-%s" % (target, started.strftime("%Y%m%d-%H%M%S"))


def find_snapshot(event, context):
    request = event["request"]
    engine = Engine(request)
    health = engine.call("GET", "/healthz")
    if engine.call("GET", "/status")["retrieving"]["status"] in BUSY:
        raise RuntimeError("DblabBusy")
    engine.call("GET", "/admin/config")
    engine.call("GET", "/admin/config.yaml", raw=True)
    _password(request)
    source = request["source"]["identifier"]
    instance = rds.describe_db_instances(DBInstanceIdentifier=source)["DBInstances"][0]
    if instance.get("DBClusterIdentifier"):
        raise RuntimeError("InvalidInput")
    snapshots = []
    for page in rds.get_paginator("describe_db_snapshots").paginate(
        DBInstanceIdentifier=source, SnapshotType="automated"
    ):
        snapshots += [s for s in page["DBSnapshots"] if s["Status"] == "available"]
    newest = max(snapshots, key=lambda s: s.get("OriginalSnapshotCreateTime", s["SnapshotCreateTime"]))
    return {
        "identifier": newest["DBSnapshotIdentifier"],
        "arn": newest["DBSnapshotArn"],
        "engine": newest["Engine"],
        "dataAsOf": newest["SnapshotCreateTime"].isoformat(),
        "engineInstanceId": health.get("instanceID"),
    }


def restore(event, context):
    request, execution = event["request"], event["execution"]
    _held(request["target"], execution)
    name = _clone_name(request, execution)
    try:
        rds.describe_db_instances(DBInstanceIdentifier=name)
        raise RuntimeError("CloneNameTaken")
    except rds.exceptions.DBInstanceNotFoundFault:
        pass
    max_age = datetime.timedelta(hours=1)
    tags = [{"Key": k, "Value": v} for k, v in request["clone"].get("tags", {}).items()] + [
        {"Key": "ManagedBy", "Value": MANAGED_BY},
        {"Key": "dblab-refresh:target", "Value": request["target"]},
        {"Key": "dblab-refresh:execution", "Value": execution["name"]},
        {"Key": "dblab-refresh:execution-arn", "Value": execution["arn"]},
        {"Key": "DeleteAfter", "Value": (_now() + max_age).isoformat()},
    ]
    response = rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=name,
        DBSnapshotIdentifier=event["snapshot"]["identifier"],
        DBInstanceClass=request["clone"]["instanceClass"],
        PubliclyAccessible=False,
        DeletionProtection=False,
        MultiAZ=False,
        AutoMinorVersionUpgrade=False,
        CopyTagsToSnapshot=False,
        EnableIAMDatabaseAuthentication=False,
        Tags=tags,
    )
    return {"identifier": name, "status": response["DBInstance"]["DBInstanceStatus"]}


def check_available(event, context):
    request, clone = event["request"], event["clone"]
    _held(request["target"], event["execution"])
    instance = rds.describe_db_instances(DBInstanceIdentifier=clone["identifier"])["DBInstances"][0]
    ready = instance["DBInstanceStatus"] == "available"
    clone = dict(clone, status="ready" if ready else "pending", rdsStatus=instance["DBInstanceStatus"])
    if ready:
        clone["endpoint"] = {"address": instance["Endpoint"]["Address"], "port": instance["Endpoint"]["Port"]}
    return clone


def patch_dblab(event, context):
    request, clone, execution = event["request"], event["clone"], event["execution"]
    table = os.environ["HISTORY_TABLE"]
    _held(request["target"], execution)
    _held(event["engineLock"]["key"], execution)
    password = _password(request)
    engine = Engine(request)
    health = engine.call("GET", "/healthz")
    before = engine.call("GET", "/status")["retrieving"]
    engine.call("GET", "/admin/config")
    engine.call("GET", "/admin/config.yaml", raw=True)
    config_key = {"target": {"S": request["target"]}, "sk": {"S": "config#" + execution["name"]}}
    dynamodb.get_item(TableName=table, Key=config_key, ConsistentRead=True)
    if before["status"] in BUSY:
        raise RuntimeError("DblabBusy")
    source = request["source"]
    connection = {
        "host": clone["endpoint"]["address"],
        "port": clone["endpoint"]["port"],
        "dbname": source["dbName"],
        "username": source["username"],
        "password": password,
    }
    engine.call("POST", "/admin/test-db-source", dict(connection, port=str(connection["port"]), db_list=[]))
    dynamodb.put_item(
        TableName=table,
        Item=dict(config_key, executionName={"S": execution["name"]}, postingAt={"S": _now().isoformat()}),
    )
    options = {
        "source": {"connection": connection, "connectionString": "", "rdsIam": {"dbInstanceIdentifier": clone["identifier"]}},
        "parallelJobs": 2,
    }
    engine.call("POST", "/admin/config", {"retrieval": {"spec": {"logicalDump": {"options": options}}}})
    answered = time.monotonic()
    dynamodb.update_item(
        TableName=table,
        Key=config_key,
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": "postedBy"},
        ExpressionAttributeValues={":v": {"S": _now().isoformat()}},
    )
    applied = engine.call("GET", "/admin/config.yaml", raw=True)
    if clone["endpoint"]["address"] not in applied:
        raise RuntimeError("DblabConfigNotApplied")
    if engine.call("GET", "/healthz").get("instanceID") != health.get("instanceID"):
        raise RuntimeError("DblabEngineChanged")
    if not engine.call("GET", "/status").get("pools"):
        raise RuntimeError("DblabNoPool")
    time.sleep(max(0.0, answered + PROOF_GAP - time.monotonic()))
    engine.call("POST", "/full-refresh")
    return {"previousLastRefresh": before.get("lastRefresh") or "", "status": "pending"}


def poll_refresh(event, context):
    request = event["request"]
    _password(request)
    engine = Engine(request)
    status = engine.call("GET", "/status")["retrieving"]
    if status["status"] == "refreshing":
        engine.call("GET", "/instance/retrieval")
    done = status["status"] == "finished"
    if done:
        engine.call("GET", "/snapshots")
    return dict(event["refresh"], retrievalStatus=status["status"], status="ready" if done else "pending")


def delete_clone(event, context):
    clone, execution = event["clone"], event["execution"]
    instance = rds.describe_db_instances(DBInstanceIdentifier=clone["identifier"])["DBInstances"][0]
    tags = {t["Key"]: t["Value"] for t in instance.get("TagList", [])}
    ours = (
        clone["identifier"].startswith("dblab-refresh-")
        and tags.get("ManagedBy") == MANAGED_BY
        and tags.get("dblab-refresh:execution") == execution["name"]
        and tags.get("dblab-refresh:execution-arn", execution["arn"]) == execution["arn"]
    )
    if not ours:
        raise RuntimeError("NotManaged")
    rds.delete_db_instance(DBInstanceIdentifier=clone["identifier"], SkipFinalSnapshot=True, DeleteAutomatedBackups=True)
    try:
        rds.describe_db_instances(DBInstanceIdentifier=clone["identifier"])
        status = "deleting"
    except rds.exceptions.DBInstanceNotFoundFault:
        status = "deleted"
    return {"status": status, "identifier": clone["identifier"]}


def record(event, context):
    request, execution = event["request"], event["execution"]
    table = os.environ["HISTORY_TABLE"]
    now = _now()
    me = {"S": execution["name"]}
    dynamodb.put_item(
        TableName=table,
        Item={
            "target": {"S": request["target"]},
            "sk": {"S": "lock"},
            "owner": me,
            "ownerArn": {"S": execution["arn"]},
            "acquiredAt": {"S": now.isoformat()},
            "ttl": {"N": str(int(now.timestamp()) + 4683)},
        },
        ConditionExpression="attribute_not_exists(#sk) OR #owner = :me OR #ttl < :now",
        ExpressionAttributeNames={"#sk": "sk", "#owner": "owner", "#ttl": "ttl"},
        ExpressionAttributeValues={":me": me, ":now": {"N": str(int(now.timestamp()))}},
    )
    started = datetime.datetime.fromisoformat(execution["startedAt"].replace("Z", "+00:00"))
    key = "run#%s#%s" % (_stamp(started), execution["name"])
    dynamodb.put_item(
        TableName=table,
        Item={
            "target": {"S": request["target"]},
            "sk": {"S": key},
            "executionName": me,
            "executionArn": {"S": execution["arn"]},
            "outcome": {"S": "running"},
            "startedAt": {"S": started.isoformat()},
            "sourceType": {"S": request["source"]["type"]},
            "sourceIdentifier": {"S": request["source"]["identifier"]},
            "cleanup": {"S": "run in progress"},
            "phases": {"L": []},
        },
        ConditionExpression="attribute_not_exists(#sk) OR (#exec = :me AND #outcome = :running)",
        ExpressionAttributeNames={"#sk": "sk", "#exec": "executionName", "#outcome": "outcome"},
        ExpressionAttributeValues={":me": me, ":running": {"S": "running"}},
    )
    running = {"executionName": me, "executionArn": {"S": execution["arn"]}, "startedAt": {"S": started.isoformat()}}
    dynamodb.update_item(
        TableName=table,
        Key={"target": {"S": "fleet#"}, "sk": {"S": request["target"]}},
        UpdateExpression="SET #running = :running, #max = :max, #since = if_not_exists(#since, :now)",
        ExpressionAttributeNames={"#running": "running", "#max": "freshnessMaxAgeSeconds", "#since": "trackedSince"},
        ExpressionAttributeValues={
            ":running": {"M": running},
            ":max": {"N": "129600"},
            ":now": {"S": now.isoformat()},
        },
    )
    return {"target": request["target"], "runKey": key, "startedAt": started.isoformat()}


def notify(event, context):
    state = event["state"]
    request, execution = state["request"], state["execution"]
    table = os.environ["HISTORY_TABLE"]
    started = datetime.datetime.fromisoformat(execution["startedAt"].replace("Z", "+00:00"))
    window = datetime.timedelta(seconds=60)
    rows = dynamodb.query(
        TableName=table,
        KeyConditionExpression="#pk = :t AND #sk BETWEEN :from AND :to",
        FilterExpression="#exec = :name",
        ExpressionAttributeNames={"#pk": "target", "#sk": "sk", "#exec": "executionName"},
        ExpressionAttributeValues={
            ":t": {"S": request["target"]},
            ":from": {"S": "run#%s#" % _stamp(started - window)},
            ":to": {"S": "run#%s#~" % _stamp(started + window)},
            ":name": {"S": execution["name"]},
        },
        ConsistentRead=True,
    )["Items"]
    now = _now()
    claim = {"target": {"S": "notification#" + execution["name"]}, "sk": {"S": "notification"}}
    dynamodb.put_item(
        TableName=table,
        Item=dict(
            claim,
            executionName={"S": execution["name"]},
            claimedAt={"S": now.isoformat()},
            claimedEpoch={"N": str(int(now.timestamp()))},
        ),
        ConditionExpression="attribute_not_exists(#sk) OR (attribute_not_exists(#publishing) AND #epoch < :stale)",
        ExpressionAttributeNames={"#sk": "sk", "#publishing": "publishingAt", "#epoch": "claimedEpoch"},
        ExpressionAttributeValues={":stale": {"N": str(int(now.timestamp()) - 35)}},
    )

    def mark(attribute, value):
        dynamodb.update_item(
            TableName=table,
            Key=claim,
            UpdateExpression="SET #a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
        )

    mark("publishingAt", _now().isoformat())
    outcome = "succeeded" if state.get("refresh", {}).get("status") == "ready" else "failed"
    subject = "DBLab refresh of %s: %s" % (request["target"], outcome.upper())
    body = json.dumps(rows[0] if rows else state, indent=2, default=str)
    message = sns.publish(
        TopicArn=os.environ["TOPIC_ARN"],
        Subject=subject,
        Message=body,
        MessageAttributes={
            "outcome": {"DataType": "String", "StringValue": outcome},
            "target": {"DataType": "String", "StringValue": request["target"]},
        },
    )
    mark("messageId", message["MessageId"])
    return {"messageId": message["MessageId"], "subject": subject}
