"""Runs moto's server on 127.0.0.1 with the fixture patches the test suites need.

Usage: moto_launcher.py [--port N] [--parent-pid PID] [--rds-page-size N]
                        [--lambda-bridge http://127.0.0.1:PORT]

Prints one line `listening on http://127.0.0.1:PORT` once it accepts connections (port 0,
the default, picks a free port), and exits when PID (the test process) is gone, so an
interrupted test run never leaves a server behind.

moto lacks some states and behaviours of real AWS. These patches add them, in this process
only, and are the ONLY ways the tests bend the emulator:

1. Pagination. moto returns every snapshot and cluster in one page, and its instance
   pages break when a resource is deleted between two pages; AWS pages all four, in
   identifier order. Here all four describes page like that, with a small page size
   (--rds-page-size) so that the tests cross page boundaries with a dozen resources.
2. Clone states. moto RDS instances are `available` at once. An instance or cluster
   tagged `test:creating-polls=N` reports `creating` for its first N describes by
   identifier (listings show the status without counting as a poll); one tagged
   `test:final-status=S` then reports S (e.g. `incompatible-restore`) instead of
   `available`. The tags come from the refresh request's `clone.tags`.
3. Snapshots. moto makes exactly one automated snapshot per instance or cluster.
   POST /_fixtures/rds/automated-snapshots {"instance"|"cluster": ID, "count": N,
   "status": S} adds N more, dated one per day into the past (newest first); with
   "daysAgo": [..] instead of "count", one per listed age, in that order. A dated instance
   snapshot's `OriginalSnapshotCreateTime` is dated with it, as RDS gives both (and a copy
   keeps the original's, which moto already does).
   POST /_fixtures/rds/snapshot-status {"snapshot"|"clusterSnapshot": ID, "status": S}
   sets a snapshot's status (e.g. `creating`).
4. Faults. POST /_fixtures/faults {"action": "DescribeDBInstances", "match": TEXT,
   "status": 500, "code": "InternalFailure", "times": N} answers the next N calls of that
   API action whose body contains TEXT (a test's own identifier, so parallel tests are
   not hit) with that error, before moto sees them; POST /_fixtures/faults/clear
   {"match": TEXT} removes them. With "delaySeconds": S instead of an error, the call
   is held S seconds and then goes to moto (a call still in flight when its run is stopped).
5. Aurora Serverless v2. moto creates a `db.serverless` instance in any cluster; RDS
   refuses one in a cluster without a Serverless v2 scaling configuration, with
   InvalidDBClusterStateFault "Set the Serverless v2 scaling configuration on the parent
   DB cluster before creating a Serverless v2 DB instance." So does this launcher.
6. Step Functions and Lambda (with --lambda-bridge). moto's interpreter executes the
   real ASL file, and each Lambda invocation is POSTed to a local Lambda runtime
   (`cargo lambda watch`) as /2015-03-31/functions/<function name>/invocations, where the
   function name is the last part of the ARN. An HTTP error from it becomes a function
   error (`x-amz-function-error: Unhandled`) carrying the handler's errorType, as AWS does.
   POST /_fixtures/lambda/lose-answer {"function": NAME, "match": TEXT or [TEXT...],
   "times": N}: the next N invocations of that function whose payload contains TEXT (each
   TEXT) run, and their answer
   is then replaced by a `Lambda.ServiceException` function error (an answer AWS lost:
   Step Functions retries a call that did its work).
   moto keeps `$$.Execution.StartTime` as a datetime inside the state, which its
   DescribeExecution then cannot encode; AWS has an ISO 8601 string there, and so does
   the JSON that this launcher makes moto write.
7. Real PostgreSQL (pg_fixture.py). POST /_fixtures/postgres/source {"instance": ID,
   "masterUsername", "masterPassword", "database", "reader", "readerPassword"} (or
   "cluster": ID) backs an RDS instance (an Aurora cluster) with a real, seeded production
   server (log_connections on, WAL archived) and makes each of its automated snapshots a
   base backup taken now (the snapshots are dated then). From there on, RDS behaves with
   real data: a snapshot made by /_fixtures/postgres/snapshot is a new base backup;
   restoring an instance (a cluster) from a backed snapshot starts a new server from a copy
   of it, and its Endpoint (the cluster's writer endpoint) is that server's 127.0.0.1
   address and port; deleting the instance (the cluster) stops the server and removes its
   files. Its LatestRestorableTime is where its archived WAL reaches (moved to the present
   by /_fixtures/postgres/archive); a point-in-time restore (RestoreDBInstanceToPointInTime,
   RestoreDBClusterToPointInTime, copy-on-write included) starts a server from the newest
   base backup before the time and replays the archive to it, or to its end for the latest
   time. /_fixtures/postgres/pool starts an empty server (the DBLab emulator's pool).
   /_fixtures/postgres/{sql,checksums,connections,servers} run SQL, sum every table's
   rows, list the connections a server received in a time window (from its log), and name
   the running servers. Every server stops with this process.
8. Automated snapshots by identifier. RDS describes an automated snapshot named by its
   identifier only when SnapshotType=automated is given too; moto ignores the type. Here
   DescribeDBSnapshots and DescribeDBClusterSnapshots with an `rds:` identifier and no
   SnapshotType answer not found, as RDS does.
9. AWS managed keys. moto makes every KMS key customer-managed; RDS encrypts most
   production databases with the AWS managed key `aws/rds`. POST /_fixtures/kms/aws-managed
   {"key": KEY_ID} makes a key DescribeKey reports with KeyManager AWS.
10. Engine versions. moto has no DescribeDBEngineVersions. Here it answers for
   aurora-postgresql with each version's Serverless v2 support, as AWS's Aurora
   documentation lists it: Serverless v2 from 13.6, 14.3, 15.2, 16.1 and 17.4; up to 256 ACUs
   (else 128) from 13.13, 14.10, 15.5, 16.1, 17.4; a minimum of 0 (auto-pause, else 0.5)
   from 13.15, 14.12, 15.7, 16.3, 17.4. Other engines and versions have no Serverless v2.
"""

import argparse
import atexit
import copy
import io
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

CREATING_POLLS_TAG = "test:creating-polls"
FINAL_STATUS_TAG = "test:final-status"

_lock = threading.Lock()
_describe_counts: dict = {}
_faults: list = []
_lost_answers: list = []


def _tags(obj) -> dict:
    return {t.get("Key"): t.get("Value") for t in (getattr(obj, "tags", None) or [])}


def _scripted_status(kind: str, identifier: str, tags: dict, named: bool):
    """The status a scripted resource reports on this describe, or None for moto's own.

    Only a describe that names the resource counts as a poll: listings (the sweep, other
    tests) show the current status without moving it on. A restore whose PostgreSQL server
    is still starting shows `creating`, as RDS does until the clone can take connections."""
    if (kind, identifier) in _starting:
        return "creating"
    if CREATING_POLLS_TAG not in tags and FINAL_STATUS_TAG not in tags:
        return None
    with _lock:
        seen = _describe_counts.get((kind, identifier), 0)
        if named:
            _describe_counts[(kind, identifier)] = seen + 1
    if seen < int(tags.get(CREATING_POLLS_TAG, "0")):
        return "creating"
    return tags.get(FINAL_STATUS_TAG)


def _page(result, key: str, attribute: str, params, page_size: int):
    """Pages a describe as RDS does: in identifier order, resuming after the marker even
    when the resource the marker names was deleted meanwhile (moto's own paginator then
    fails with InvalidToken, which would make parallel tests flaky)."""
    from moto.core.responses import ActionResult

    items = sorted(result._result[key], key=lambda item: getattr(item, attribute))
    marker = params.get("Marker")
    if marker:
        items = [item for item in items if getattr(item, attribute) >= marker]
    limit = int(params.get("MaxRecords") or page_size)
    page, rest = items[:limit], items[limit:]
    body = dict(result._result)
    body[key] = page
    body["Marker"] = getattr(rest[0], attribute) if rest else None
    return ActionResult(body)


def patch_rds(page_size: int) -> None:
    from moto.rds.responses import RDSResponse

    def paged(original, key, attribute):
        def describe(self):
            return _page(original(self), key, attribute, self.params, page_size)

        return describe

    RDSResponse.describe_db_snapshots = paged(RDSResponse.describe_db_snapshots, "DBSnapshots", "db_snapshot_identifier")
    RDSResponse.describe_db_cluster_snapshots = paged(
        RDSResponse.describe_db_cluster_snapshots, "DBClusterSnapshots", "db_cluster_snapshot_identifier"
    )

    def scripted(original, kind, key, attribute, param, status_field):
        """Pages the describe, then shows scripted statuses on copies of the models."""
        original = paged(original, key, attribute)

        def describe(self):
            result = original(self)
            items = result._result[key]
            named = bool(self.params.get(param))
            for i, model in enumerate(items):
                status = _scripted_status(kind, getattr(model, attribute), _tags(model), named)
                if status is not None:
                    shown = copy.copy(model)
                    setattr(shown, status_field, status)
                    items[i] = shown
            return result

        return describe

    from moto.rds.exceptions import InvalidDBClusterStateFault
    from moto.rds.models import RDSBackend

    create_db_instance = RDSBackend.create_db_instance

    def create_serverless_checked(self, db_kwargs):
        cluster = self.clusters.get(db_kwargs.get("db_cluster_identifier") or "")
        serverless = (db_kwargs.get("db_instance_class") or "") == "db.serverless"
        if serverless and cluster is not None and not getattr(cluster, "serverless_v2_scaling_configuration", None):
            raise InvalidDBClusterStateFault(
                "Set the Serverless v2 scaling configuration on the parent DB cluster before creating a "
                "Serverless v2 DB instance."
            )
        return create_db_instance(self, db_kwargs)

    RDSBackend.create_db_instance = create_serverless_checked

    RDSResponse.describe_db_instances = scripted(
        RDSResponse.describe_db_instances, "instance", "DBInstances", "db_instance_identifier", "DBInstanceIdentifier", "status"
    )
    # A cluster's `status` property flips `creating` to `available` when read: set the field.
    RDSResponse.describe_db_clusters = scripted(
        RDSResponse.describe_db_clusters, "cluster", "DBClusters", "db_cluster_identifier", "DBClusterIdentifier", "_status"
    )


def _rds_backend(region: str):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    return rds_backends[DEFAULT_ACCOUNT_ID][region]


def add_automated_snapshots(body: dict) -> dict:
    backend = _rds_backend(body.get("region", "us-east-1"))
    ages = body.get("daysAgo") or list(range(1, int(body.get("count", 1)) + 1))
    status = body.get("status", "available")
    now = datetime.now(timezone.utc)
    made = []
    for n in ages:
        created = now - timedelta(days=n, minutes=7)
        stamp = created.strftime("%Y-%m-%d-%H-%M")
        if "instance" in body:
            snap = backend.create_auto_snapshot(body["instance"], f"rds:{body['instance']}-{stamp}")
            made.append(snap.db_snapshot_identifier)
        else:
            snap = backend.create_auto_cluster_snapshot(body["cluster"], f"rds:{body['cluster']}-{stamp}")
            made.append(snap.db_cluster_snapshot_identifier)
        _date_snapshot(snap, created)
        snap.status = status
    return {"created": made}


def _date_snapshot(snap, created: datetime) -> None:
    """A snapshot dated `created`: its creation, and for an instance snapshot its original
    creation too (RDS gives both; a copy keeps the original's)."""
    created = created.replace(tzinfo=None) if snap.created.tzinfo is None else created
    snap.created = created
    if hasattr(snap, "original_snapshot_create_time"):
        snap.original_snapshot_create_time = created


def set_snapshot_status(body: dict) -> dict:
    backend = _rds_backend(body.get("region", "us-east-1"))
    if "snapshot" in body:
        backend.database_snapshots[body["snapshot"]].status = body["status"]
    else:
        backend.cluster_snapshots[body["clusterSnapshot"]].status = body["status"]
    return {"ok": True}


_pg = None
# A backed source's latest restorable time: where its archived WAL reaches.
_restorable: dict = {}
# Restored instances and clusters whose server is still starting: `(kind, identifier)`.
_starting: set = set()


def _servers():
    """The PostgreSQL servers, started on first use (the fast tests never pay for them)."""
    global _pg
    with _lock:
        if _pg is None:
            import pg_fixture

            _pg = pg_fixture.Servers()
        return _pg


def _backed(kind: str, identifier) -> bool:
    return _pg is not None and identifier is not None and f"{kind}:{identifier}" in _pg.servers


def _snapshots_of(backend, kind: str, source_id: str) -> list:
    if kind == "instance":
        return [s for s in backend.database_snapshots.values() if s.database.db_instance_identifier == source_id]
    return [s for s in backend.cluster_snapshots.values() if s.cluster.db_cluster_identifier == source_id]


def _snapshot_id(snapshot) -> str:
    return getattr(snapshot, "db_snapshot_identifier", None) or snapshot.db_cluster_snapshot_identifier


def _back_snapshot(servers, snapshot, server_name: str) -> dict:
    snapshot_id = _snapshot_id(snapshot)
    taken = servers.backup(server_name, snapshot_id)
    created = taken["takenAt"]
    _date_snapshot(snapshot, created)
    return {"snapshot": snapshot_id, "createdAt": created.isoformat()}


def _source_of(body: dict):
    """`("instance", ID, model)` or `("cluster", ID, model)` from a fixture body."""
    backend = _rds_backend(body.get("region", "us-east-1"))
    if "cluster" in body:
        return backend, "cluster", body["cluster"], backend.clusters[body["cluster"]]
    return backend, "instance", body["instance"], backend.databases[body["instance"]]


def postgres_source(body: dict) -> dict:
    backend, kind, source_id, model = _source_of(body)
    servers = _servers()
    name = f"{kind}:{source_id}"
    server = servers.create(name, body["masterUsername"], body["masterPassword"], archive=True, log_connections=True)
    servers.seed(name, body["database"], body["reader"], body["readerPassword"])
    model.port = server.port
    snapshots = [_back_snapshot(servers, s, name) for s in _snapshots_of(backend, kind, source_id)]
    if kind == "cluster":
        if snapshots:
            model.earliest_restorable_time = servers.backups[snapshots[0]["snapshot"]]["takenAt"].replace(tzinfo=None)
    _restorable[name] = servers.archive_now(name, quiet=0)
    return {"server": name, "port": server.port, "snapshots": snapshots}


def postgres_archive(body: dict) -> dict:
    """The source's archive made current: its latest restorable time moves to now."""
    _, kind, source_id, _ = _source_of(body)
    name = f"{kind}:{source_id}"
    _restorable[name] = _servers().archive_now(name)
    return {"latestRestorableTime": _restorable[name].isoformat()}


def postgres_snapshot(body: dict) -> dict:
    backend, kind, source_id, _ = _source_of(body)
    now = datetime.now(timezone.utc)
    snapshot_id = body.get("snapshot") or f"rds:{source_id}-{now.strftime('%Y-%m-%d-%H-%M-%S')}"
    if kind == "instance":
        snapshot = backend.create_auto_snapshot(source_id, snapshot_id)
    else:
        snapshot = backend.create_auto_cluster_snapshot(source_id, snapshot_id)
    return _back_snapshot(_servers(), snapshot, f"{kind}:{source_id}")


def postgres_pool(body: dict) -> dict:
    import pg_fixture

    name = f"pool:{body['name']}"
    server = _servers().create(name, body["username"], body["password"])
    return {"server": name, "host": "127.0.0.1", "port": server.port, "binDir": str(pg_fixture.bin_dir())}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def postgres_fixture(path: str, body: dict) -> dict:
    if path == "/_fixtures/postgres/source":
        return postgres_source(body)
    if path == "/_fixtures/postgres/snapshot":
        return postgres_snapshot(body)
    if path == "/_fixtures/postgres/pool":
        return postgres_pool(body)
    if path == "/_fixtures/postgres/archive":
        return postgres_archive(body)
    servers = _servers()
    if path == "/_fixtures/postgres/sql":
        return {"output": servers.psql(body["server"], body["sql"], body.get("database", "postgres"))}
    if path == "/_fixtures/postgres/checksums":
        return {"tables": servers.checksums(body["server"], body["database"])}
    if path == "/_fixtures/postgres/connections":
        lines = servers.connections(body["server"], _time(body["since"]), _time(body["until"]))
        return {"count": len(lines), "lines": lines}
    if path == "/_fixtures/postgres/servers":
        return {"servers": sorted(servers.servers)}
    raise KeyError(f"unknown fixture {path}")


@contextmanager
def _creating(kind: str, identifier, backed: bool):
    """While a backed restore starts its server, the new resource reports `creating` (moto
    makes it `available` at once); marked before moto creates it, so no describe in
    between sees it available."""
    key = (kind, identifier)
    if backed and identifier:
        with _lock:
            _starting.add(key)
    try:
        yield
    finally:
        with _lock:
            _starting.discard(key)


def _param(params: dict, snake: str, camel: str):
    value = params.get(snake)
    return value if value not in (None, "") else params.get(camel)


def _clone_server(name: str, snapshot_id: str, model, recover_to=None) -> None:
    """A restored instance or cluster: a server started from the snapshot's base backup,
    with production's users (they are in the copied data)."""
    origin = _pg.servers.get(_pg.backups[snapshot_id]["server"])
    server = _pg.from_backup(name, snapshot_id, origin.user if origin else "postgres",
                             origin.password if origin else "", recover_to)
    model.port = server.port


def _restore_time(value):
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _point_in_time_clone(kind: str, source_id: str, model, restore_time, latest: bool) -> None:
    """A restore to a time of a backed source: the newest base backup before it, plus the
    archived WAL replayed to it (to the archive's end for the latest time)."""
    source = f"{kind}:{source_id}"
    target = None if latest else _restore_time(restore_time)
    backup = _pg.backup_before(source, target)
    name = f"{kind}:{model.db_instance_identifier if kind == 'instance' else model.db_cluster_identifier}"
    _clone_server(name, backup, model, "latest" if target is None else target)


def _backed_snapshot(snapshot_id: str) -> bool:
    return _pg is not None and snapshot_id in _pg.backups


def patch_rds_postgres() -> None:
    """Backed instances and clusters: restores start real servers, deletions stop them,
    and the endpoint is the server's."""
    from moto.rds.models import DBCluster, DBInstance, RDSBackend

    # Restoring an instance or a cluster from a backed snapshot starts its server.
    for kind, restore_name, arn_part, snake, camel in [
        ("instance", "restore_db_instance_from_db_snapshot", ":snapshot:", "db_instance_identifier", "DBInstanceIdentifier"),
        ("cluster", "restore_db_cluster_from_snapshot", ":cluster-snapshot:", "db_cluster_identifier", "DBClusterIdentifier"),
    ]:
        restore = getattr(RDSBackend, restore_name)

        def restore_from_snapshot(self, from_snapshot_id, overrides, restore=restore, kind=kind, arn_part=arn_part,
                                  snake=snake, camel=camel):
            snapshot_id = from_snapshot_id.split(arn_part)[-1]
            backed = _backed_snapshot(snapshot_id)
            with _creating(kind, _param(overrides, snake, camel), backed):
                model = restore(self, from_snapshot_id, overrides)
                if backed:
                    _clone_server(f"{kind}:{getattr(model, snake)}", snapshot_id, model)
            return model

        setattr(RDSBackend, restore_name, restore_from_snapshot)

    to_point = RDSBackend.restore_db_instance_to_point_in_time

    def instance_to_point(self, source_db_identifier, target_db_identifier, overrides):
        backed = _backed("instance", source_db_identifier)
        with _creating("instance", target_db_identifier, backed):
            instance = to_point(self, source_db_identifier, target_db_identifier, overrides)
            if backed:
                latest = str(_param(overrides, "use_latest_restorable_time", "UseLatestRestorableTime")).lower() == "true"
                restore_time = _param(overrides, "restore_time", "RestoreTime")
                _point_in_time_clone("instance", source_db_identifier, instance, restore_time, latest)
        return instance

    RDSBackend.restore_db_instance_to_point_in_time = instance_to_point

    cluster_to_point = RDSBackend.restore_db_cluster_to_point_in_time

    def cluster_to_point_in_time(self, db_cluster_identifier, source_db_cluster_identifier, restore_type="full-copy",
                                 restore_to_time=None, use_latest_restorable_time=False, **overrides):
        backed = _backed("cluster", source_db_cluster_identifier)
        with _creating("cluster", db_cluster_identifier, backed):
            cluster = cluster_to_point(self, db_cluster_identifier, source_db_cluster_identifier, restore_type,
                                       restore_to_time, use_latest_restorable_time, **overrides)
            if backed:
                # A copy-on-write clone shares the live volume: here, the archive replayed to its end.
                latest = str(use_latest_restorable_time).lower() == "true" or restore_type == "copy-on-write"
                _point_in_time_clone("cluster", source_db_cluster_identifier, cluster, restore_to_time, latest)
        return cluster

    RDSBackend.restore_db_cluster_to_point_in_time = cluster_to_point_in_time

    for model_class, kind, attribute in [(DBInstance, "instance", "db_instance_identifier"),
                                         (DBCluster, "cluster", "db_cluster_identifier")]:
        original = model_class.latest_restorable_time

        def latest_restorable(self, original=original, kind=kind, attribute=attribute):
            reached = _restorable.get(f"{kind}:{getattr(self, attribute)}")
            if reached is not None:
                return reached.replace(tzinfo=None)
            return original.fget(self)

        model_class.latest_restorable_time = property(latest_restorable)

    # Deleting a backed instance or cluster stops its server; its address is the server's.
    for kind, delete_name, identifier_name, model_class, address_name, attribute in [
        ("instance", "delete_db_instance", "db_instance_identifier", DBInstance, "address", "db_instance_identifier"),
        ("cluster", "delete_db_cluster", "cluster_identifier", DBCluster, "endpoint", "db_cluster_identifier"),
    ]:
        delete = getattr(RDSBackend, delete_name)

        # moto passes the identifier by position or by name.
        def delete_backed(self, *args, delete=delete, kind=kind, identifier_name=identifier_name, **kwargs):
            identifier = args[0] if args else kwargs.get(identifier_name)
            deleted = delete(self, *args, **kwargs)
            if _backed(kind, identifier):
                _pg.stop(f"{kind}:{identifier}")
            return deleted

        setattr(RDSBackend, delete_name, delete_backed)
        address = getattr(model_class, address_name)

        def backed_address(self, address=address, kind=kind, attribute=attribute):
            if _backed(kind, getattr(self, attribute)):
                return "127.0.0.1"
            return address.fget(self)

        setattr(model_class, address_name, property(backed_address))


def _action_of(environ, body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    fields = parse_qs(environ.get("QUERY_STRING", ""))
    if body:
        fields.update(parse_qs(body.decode("utf-8", "replace")))
    return (fields.get("Action") or [""])[0]


def _fault_response(fault: dict, json_protocol: bool, start_response):
    status = int(fault.get("status", 500))
    code = fault.get("code", "InternalFailure")
    message = fault.get("message", "injected by the test fixture")
    reason = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
    if json_protocol:
        payload = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", code)]
    else:
        payload = (
            "<ErrorResponse><Error><Type>Receiver</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>fixture</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    start_response(f"{status} {reason}", headers + [("Content-Length", str(len(payload)))])
    return [payload]


# (first version with Serverless v2, with 256 ACUs, with a minimum of 0) per major version.
_SERVERLESS_V2 = {13: (6, 13, 15), 14: (3, 10, 12), 15: (2, 5, 7), 16: (1, 1, 3), 17: (4, 4, 4)}


def serverless_v2_support(engine: str, version: str):
    """(min ACUs, max ACUs) an Aurora PostgreSQL version supports, or None."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return None
    first = _SERVERLESS_V2.get(major)
    if engine != "aurora-postgresql" or not first or minor < first[0]:
        return None
    return (0.0 if minor >= first[2] else 0.5, 256.0 if minor >= first[1] else 128.0)


def describe_engine_versions(fields: dict) -> str:
    engine = (fields.get("Engine") or [""])[0]
    version = (fields.get("EngineVersion") or [""])[0]
    support = serverless_v2_support(engine, version)
    features = (
        f"<ServerlessV2FeaturesSupport><MinCapacity>{support[0]}</MinCapacity>"
        f"<MaxCapacity>{support[1]}</MaxCapacity></ServerlessV2FeaturesSupport>"
        if support
        else ""
    )
    return (
        '<DescribeDBEngineVersionsResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">'
        "<DescribeDBEngineVersionsResult><DBEngineVersions><DBEngineVersion>"
        f"<Engine>{engine}</Engine><EngineVersion>{version}</EngineVersion>{features}"
        "</DBEngineVersion></DBEngineVersions></DescribeDBEngineVersionsResult>"
        "<ResponseMetadata><RequestId>fixture</RequestId></ResponseMetadata></DescribeDBEngineVersionsResponse>"
    )


def make_aws_managed(body: dict) -> dict:
    from moto.kms.models import kms_backends

    key = kms_backends[body.get("account", "123456789012")][body.get("region", "us-east-1")].keys[body["key"]]
    key.key_manager = "AWS"
    return {"key": key.id, "keyManager": key.key_manager}


def _automated_snapshot_without_type(environ, body: bytes):
    """RDS finds an automated snapshot by its identifier only with SnapshotType=automated
    (its API reference says the type must be given); moto finds it without."""
    action = _action_of(environ, body)
    key, code = {
        "DescribeDBSnapshots": ("DBSnapshotIdentifier", "DBSnapshotNotFound"),
        "DescribeDBClusterSnapshots": ("DBClusterSnapshotIdentifier", "DBClusterSnapshotNotFoundFault"),
    }.get(action, (None, None))
    if not key:
        return None
    fields = parse_qs(body.decode("utf-8", "replace"))
    identifier = (fields.get(key) or [""])[0]
    if identifier.startswith("rds:") and not fields.get("SnapshotType"):
        return {"status": 404, "code": code, "message": f"{identifier} not found (an automated snapshot needs SnapshotType)"}
    return None


def fixtures(app):
    """WSGI middleware: the /_fixtures routes, and injected faults in front of moto."""

    def reply(start_response, payload, status="200 OK"):
        data = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def wsgi(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_fixtures/"):
            try:
                data = json.loads(body or b"{}")
                if path == "/_fixtures/rds/automated-snapshots":
                    return reply(start_response, add_automated_snapshots(data))
                if path == "/_fixtures/rds/snapshot-status":
                    return reply(start_response, set_snapshot_status(data))
                if path.startswith("/_fixtures/postgres/"):
                    return reply(start_response, postgres_fixture(path, data))
                if path == "/_fixtures/faults":
                    with _lock:
                        _faults.append(dict(data, remaining=int(data.get("times", 1))))
                    return reply(start_response, {"ok": True})
                if path == "/_fixtures/kms/aws-managed":
                    return reply(start_response, make_aws_managed(data))
                if path == "/_fixtures/lambda/lose-answer":
                    with _lock:
                        _lost_answers.append(dict(data, remaining=int(data.get("times", 1))))
                    return reply(start_response, {"ok": True})
                if path == "/_fixtures/faults/clear":
                    with _lock:
                        _faults[:] = [f for f in _faults if f.get("match") != data.get("match")]
                    return reply(start_response, {"ok": True})
                return reply(start_response, {"error": f"unknown fixture {path}"}, "404 Not Found")
            except Exception as e:  # the test sees the reason instead of a hang
                return reply(start_response, {"error": repr(e)}, "400 Bad Request")
        if _action_of(environ, body) == "DescribeDBEngineVersions":
            payload = describe_engine_versions(parse_qs(body.decode("utf-8", "replace"))).encode()
            start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))])
            return [payload]
        refused = _automated_snapshot_without_type(environ, body)
        if refused:
            return _fault_response(refused, False, start_response)
        if _faults:
            action = _action_of(environ, body)
            text = body.decode("utf-8", "replace") + environ.get("QUERY_STRING", "")
            with _lock:
                fault = next(
                    (f for f in _faults if f["action"] == action and f["remaining"] > 0 and f.get("match", "") in text),
                    None,
                )
                if fault:
                    fault["remaining"] -= 1
            if fault and "delaySeconds" in fault:
                time.sleep(float(fault["delaySeconds"]))
            elif fault:
                return _fault_response(fault, bool(environ.get("HTTP_X_AMZ_TARGET")), start_response)
        return app(environ, start_response)

    return wsgi


def _matches(entry: dict, text: str) -> bool:
    """An entry's "match": one text, or a list of texts that must all be there."""
    wanted = entry.get("match", "")
    return all(part in text for part in (wanted if isinstance(wanted, list) else [wanted]))


def bridge_lambda(base_url: str) -> None:
    import urllib.error
    import urllib.request

    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        name = function_name.split(":function:")[-1].split(":")[0]
        data = body.encode() if isinstance(body, str) else (body or b"{}")
        request = urllib.request.Request(
            f"{base_url}/2015-03-31/functions/{name}/invocations", data=data, method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            # The first invocation of a function may build it: allow minutes.
            with urllib.request.urlopen(request, timeout=900) as response:
                answer = response.read()
        except urllib.error.HTTPError as e:
            response_headers["x-amz-function-error"] = "Unhandled"
            return e.read()
        text = data.decode("utf-8", "replace")
        with _lock:
            lost = next(
                (l for l in _lost_answers if l["function"] == name and l["remaining"] > 0 and _matches(l, text)),
                None,
            )
            if lost:
                lost["remaining"] -= 1
        if lost:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": "Lambda.ServiceException", "errorMessage": "answer lost (test fixture)"}).encode()
        return answer

    LambdaSimpleBackend.invoke = invoke

    import datetime as _datetime
    import types

    import moto.stepfunctions.responses as sfn_responses

    def encode_dates(value):
        if isinstance(value, _datetime.datetime):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    shim = types.SimpleNamespace(**{k: getattr(json, k) for k in dir(json) if not k.startswith("__")})
    shim.dumps = lambda obj, **kw: json.dumps(obj, default=encode_dates, **kw)
    sfn_responses.json = shim


def stop_postgres() -> None:
    if _pg is not None:
        _pg.stop_all()


def watch_parent(pid: int) -> None:
    def loop():
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stop_postgres()
                os._exit(0)
            except PermissionError:
                pass
            time.sleep(0.5)

    threading.Thread(target=loop, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--rds-page-size", type=int, default=100)
    parser.add_argument("--lambda-bridge")
    args = parser.parse_args()

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    patch_rds(args.rds_page_size)
    patch_rds_postgres()
    signal.signal(signal.SIGTERM, lambda *_: (stop_postgres(), os._exit(0)))
    atexit.register(stop_postgres)
    if args.lambda_bridge:
        bridge_lambda(args.lambda_bridge.rstrip("/"))
    if args.parent_pid:
        watch_parent(args.parent_pid)
    app = fixtures(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
