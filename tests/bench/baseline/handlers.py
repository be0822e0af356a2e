"""The benchmark's baseline: the eight handlers written the common way, as Python Lambdas
with boto3 (clients built at import, as AWS's samples do), doing the same work for the same
events with fewer checks, so fewer calls (the benchmark counts both sides'). Run by
awslambdaric through the same local Runtime API as the Rust binaries (tests/src/bench/);
not deployed anywhere.
"""

import datetime
import json
import os
import urllib.request

import boto3

rds = boto3.client("rds")
secrets = boto3.client("secretsmanager")
dynamodb = boto3.client("dynamodb")
sns = boto3.client("sns")
sfn = boto3.client("stepfunctions")

MANAGED_BY = "dblab-refresh"


def _secret(arn):
    return secrets.get_secret_value(SecretId=arn)["SecretString"]


def _dblab(request, method, path, body=None):
    spec = request["dblab"]
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(spec["apiEndpoint"] + path, data=data, method=method)
    req.add_header("Verification-Token", _secret(spec["tokenSecretArn"]))
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def find_snapshot(event, context):
    request = event["request"]
    _dblab(request, "GET", "/healthz")
    status = _dblab(request, "GET", "/status")
    if status["retrieving"]["status"] in ("refreshing", "snapshotting", "pending", "renewed"):
        raise RuntimeError("DblabBusy")
    source = request["source"]["identifier"]
    rds.describe_db_instances(DBInstanceIdentifier=source)
    snapshots = []
    for page in rds.get_paginator("describe_db_snapshots").paginate(
        DBInstanceIdentifier=source, SnapshotType="automated"
    ):
        snapshots += [s for s in page["DBSnapshots"] if s["Status"] == "available"]
    newest = max(snapshots, key=lambda s: s["SnapshotCreateTime"])
    return {
        "identifier": newest["DBSnapshotIdentifier"],
        "arn": newest["DBSnapshotArn"],
        "engine": newest["Engine"],
        "createdAt": _iso(newest["SnapshotCreateTime"]),
    }


def restore(event, context):
    request, execution = event["request"], event["execution"]
    name = "bench-" + execution["name"]
    tags = [
        {"Key": "ManagedBy", "Value": MANAGED_BY},
        {"Key": "dblab-refresh:execution", "Value": execution["name"]},
    ]
    response = rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=name,
        DBSnapshotIdentifier=event["snapshot"]["identifier"],
        DBInstanceClass=request["clone"]["instanceClass"],
        PubliclyAccessible=False,
        DeletionProtection=False,
        Tags=tags,
    )
    return {"identifier": name, "status": response["DBInstance"]["DBInstanceStatus"]}


def check_available(event, context):
    clone = event["clone"]
    instance = rds.describe_db_instances(DBInstanceIdentifier=clone["identifier"])["DBInstances"][0]
    ready = instance["DBInstanceStatus"] == "available"
    clone = dict(clone, status="ready" if ready else "pending", rdsStatus=instance["DBInstanceStatus"])
    if ready:
        clone["endpoint"] = {"address": instance["Endpoint"]["Address"], "port": instance["Endpoint"]["Port"]}
    return clone


def patch_dblab(event, context):
    request, clone = event["request"], event["clone"]
    password = json.loads(_secret(request["source"]["passwordSecretArn"]))["password"]
    before = _dblab(request, "GET", "/status")
    connection = {
        "host": clone["endpoint"]["address"],
        "port": clone["endpoint"]["port"],
        "dbname": request["source"]["dbName"],
        "username": request["source"]["username"],
        "password": password,
    }
    _dblab(request, "POST", "/admin/config", {"retrieval": {"spec": {"logicalDump": {"options": {"source": {"connection": connection}}}}}})
    applied = _dblab(request, "GET", "/admin/config")
    if applied["retrieval"]["spec"]["logicalDump"]["options"]["source"]["connection"]["host"] != connection["host"]:
        raise RuntimeError("DblabConfigNotApplied")
    _dblab(request, "POST", "/full-refresh")
    return {"previousLastRefresh": before["retrieving"].get("lastRefresh", ""), "status": "pending"}


def poll_refresh(event, context):
    status = _dblab(event["request"], "GET", "/status")["retrieving"]
    if status["status"] == "refreshing":
        _dblab(event["request"], "GET", "/instance/retrieval")
    done = status["status"] == "finished"
    return dict(event["refresh"], retrievalStatus=status["status"], status="ready" if done else "pending")


def delete_clone(event, context):
    clone, execution = event["clone"], event["execution"]
    instance = rds.describe_db_instances(DBInstanceIdentifier=clone["identifier"])["DBInstances"][0]
    tags = {t["Key"]: t["Value"] for t in instance.get("TagList", [])}
    if tags.get("dblab-refresh:execution") != execution["name"]:
        raise RuntimeError("NotManaged")
    rds.delete_db_instance(DBInstanceIdentifier=clone["identifier"], SkipFinalSnapshot=True, DeleteAutomatedBackups=True)
    return {"status": "deleting", "identifier": clone["identifier"]}


def record(event, context):
    request, execution = event["request"], event["execution"]
    table = os.environ["HISTORY_TABLE"]
    now = datetime.datetime.now(datetime.timezone.utc)
    dynamodb.put_item(
        TableName=table,
        Item={
            "target": {"S": request["target"]},
            "sk": {"S": "lock"},
            "owner": {"S": execution["name"]},
            "ttl": {"N": str(int(now.timestamp()) + 6 * 3600)},
        },
        ConditionExpression="attribute_not_exists(sk) OR #owner = :me",
        ExpressionAttributeNames={"#owner": "owner"},
        ExpressionAttributeValues={":me": {"S": execution["name"]}},
    )
    key = "run#%s#%s" % (now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", execution["name"])
    dynamodb.put_item(
        TableName=table,
        Item={
            "target": {"S": request["target"]},
            "sk": {"S": key},
            "status": {"S": "running"},
            "execution": {"S": execution["name"]},
        },
    )
    return {"target": request["target"], "runKey": key, "startedAt": now.isoformat()}


def notify(event, context):
    state = event["state"]
    subject = "DBLab refresh of %s succeeded" % state["request"]["target"]
    body = json.dumps(state, indent=2, default=str)
    message = sns.publish(TopicArn=os.environ["TOPIC_ARN"], Subject=subject, Message=body)
    return {"messageId": message["MessageId"], "subject": subject}
