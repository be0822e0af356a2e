//! What the handlers are measured against: a world in moto and the emulator, and one event
//! per handler, made once for both languages.

use super::*;

/// What every event is built from: one source, one ready clone, one finished refresh.
pub(super) struct Fixtures {
    pub(super) w: World,
    pub(super) aws: TimingProxy,
    pub(super) dblab: TimingProxy,
    /// `DblabEngines`: the proxy in front of the engine.
    pub(super) engines: String,
    pub(super) table: String,
    pub(super) topic_arn: String,
    pub(super) request: Value,
    pub(super) snapshot: RestoreSource,
    pub(super) clone: CloneInstance,
    pub(super) refresh: Refresh,
}

impl Fixtures {
    pub(super) async fn new() -> Self {
        // Instant phases: each patch-dblab invocation's refresh is over before the next.
        let w = World::with_engine(Settings { dump_ms: 0, restore_ms: 0, snapshot_ms: 0, ..Settings::default() }).await;
        let aws = TimingProxy::start(&moto().endpoint).await;
        let dblab = TimingProxy::start(&w.emulator.url()).await;
        let table = w.history_table();
        let (topic_arn, _) = w.topic_with_queue().await;
        let source = w.rds_source().await;
        // The engine by the proxy's address, with its token secret: the Python baseline reads
        // both from the request; the stack lists the proxy as the engine.
        let mut request = w.request("rds", &source);
        request["dblab"]["apiEndpoint"] = json!(dblab.url);
        request["dblab"]["tokenSecretArn"] = json!(w.token_arn);
        if let Some(dblab) = request["dblab"].as_object_mut() {
            dblab.remove("engine");
        }
        let engines = format!("bench {} {} plaintext", dblab.url, w.token_arn);
        let exec = execution(0);
        let find_deps = find_snapshot::Deps {
            rds: Rds::new(w.rds.clone()),
            ec2: refresh_core::clients::Ec2::new(&w.config),
            kms: refresh_core::clients::Kms::new(&w.config),
            allowed_kms_keys: Vec::new(),
            shared_snapshot_arns: Vec::new(),
            copy_key: None,
            secrets: SecretReader::new(w.secrets.clone()),
            dblab: Default::default(),
            engines: EngineList::parse(&engines).expect("the bench's engine"),
        };
        let snapshot = find_snapshot::handle(
            &find_deps,
            find_snapshot::Input { execution: exec.clone(), request: typed(&request) },
            Watch::once(),
        )
        .await
        .expect("a snapshot");
        let clone = ready_clone(&w, &request, &snapshot, &exec).await;
        let patch_deps = patch_dblab::Deps {
            secrets: SecretReader::new(w.secrets.clone()),
            dblab: Default::default(),
            engines: EngineList::parse(&engines).expect("the bench's engine"),
            history: History::new(w.dynamodb.clone(), w.history_table()),
        };
        let engine_lock = refresh_core::history::engine_lock(snapshot.engine_instance_id.as_deref(), &dblab.url)
            .expect("an engine lock");
        w.hold_locks(&exec, &[request["target"].as_str().unwrap_or_default(), &engine_lock.key]).await;
        let input = patch_dblab::Input {
            execution: exec,
            request: typed(&request),
            clone: clone.clone(),
            engine_lock: Some(engine_lock),
        };
        let refresh = patch_dblab::handle(&patch_deps, input, Watch::once()).await.expect("a refresh");
        let fixtures = Self { w, aws, dblab, engines, table, topic_arn, request, snapshot, clone, refresh };
        fixtures.settle().await;
        fixtures
    }

    /// The calls made through both proxies since the last look.
    pub(super) fn calls(&self) -> Vec<Call> {
        let mut calls = self.aws.take();
        calls.extend(self.dblab.take());
        calls
    }

    /// Waits until the engine is idle again (outside any measured time).
    pub(super) async fn settle(&self) {
        for _ in 0..200 {
            if self.w.emulator.view().status == "finished" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the engine did not finish its refresh");
    }

    /// The event the state machine would send `handler` for its `k`-th invocation.
    pub(super) async fn event(&self, handler: &str, k: usize) -> Value {
        let exec = execution(k);
        let request = &self.request;
        match handler {
            "find-snapshot" => json!({"execution": exec, "request": request}),
            "restore" => {
                // A target of its own: each restore holds its target's lock when it runs, and
                // the events are made before any runs.
                let mut request = request.clone();
                request["target"] = json!(format!("bench-{}", unique("r")));
                self.w.hold_locks(&exec, &[request["target"].as_str().unwrap_or_default()]).await;
                json!({"execution": exec, "request": request, "snapshot": self.snapshot})
            }
            "check-available" => {
                self.w.hold_locks(&execution(0), &[request["target"].as_str().unwrap_or_default()]).await;
                json!({"execution": execution(0), "request": request, "clone": self.clone})
            }
            "patch-dblab" => {
                let lock = refresh_core::history::engine_lock(
                    self.snapshot.engine_instance_id.as_deref(),
                    request["dblab"]["apiEndpoint"].as_str().unwrap_or_default(),
                );
                let keys: Vec<&str> = [request["target"].as_str()]
                    .into_iter()
                    .flatten()
                    .chain(lock.as_ref().map(|l| l.key.as_str()))
                    .collect();
                self.w.hold_locks(&execution(0), &keys).await;
                json!({"execution": execution(0), "request": request, "clone": self.clone, "engineLock": lock})
            }
            "poll-refresh" => json!({"execution": execution(0), "request": request, "refresh": self.refresh}),
            "delete-clone" => {
                let clone = ready_clone(&self.w, request, &self.snapshot, &exec).await;
                json!({"mode": "delete", "execution": exec, "clone": clone})
            }
            "record" => {
                let mut request = request.clone();
                request["target"] = json!(format!("bench-{}", unique("t")));
                json!({"action": "start", "execution": exec, "request": request})
            }
            "notify" => {
                // A refresh that succeeded, of an execution of its own: each invocation
                // claims and sends its run's one notification.
                let refresh = Refresh {
                    status: PollStatus::Ready,
                    retrieval_status: RetrievalStatus::Finished,
                    ..self.refresh.clone()
                };
                let state = RunState {
                    request: request.clone(),
                    execution: Some(exec),
                    snapshot: Some(self.snapshot.clone()),
                    clone: Some(self.clone.clone()),
                    refresh: Some(refresh),
                    ..Default::default()
                };
                json!({"state": state})
            }
            other => panic!("no such handler {other}"),
        }
    }
}

/// The bench's request, valid by construction, as a handler's input holds it.
fn typed(request: &Value) -> refresh_core::RefreshRequest {
    refresh_core::RefreshRequest::from_document(request).expect("a valid request")
}

/// A clone restored for `exec` and checked until ready, as the state machine leaves it.
async fn ready_clone(w: &World, request: &Value, snapshot: &RestoreSource, exec: &Execution) -> CloneInstance {
    w.hold_locks(exec, &[request["target"].as_str().unwrap_or_default()]).await;
    let restore_deps =
        restore::Deps { rds: Rds::new(w.rds.clone()), history: History::new(w.dynamodb.clone(), w.history_table()) };
    let input = restore::Input { execution: exec.clone(), request: typed(request), snapshot: snapshot.clone() };
    let clone = restore::handle(&restore_deps, input).await.expect("a clone");
    let check_deps = check_available::Deps {
        rds: Rds::new(w.rds.clone()),
        history: History::new(w.dynamodb.clone(), w.history_table()),
    };
    let input = check_available::Input { execution: exec.clone(), request: typed(request), clone };
    let window = refresh_core::rds::LONGEST_CHECK + Duration::from_secs(30);
    let clone = check_available::handle(&check_deps, input, Watch::for_window(window)).await.expect("a checked clone");
    assert_eq!(clone.status, PollStatus::Ready, "{clone:?}");
    clone
}

fn execution(k: usize) -> Execution {
    // CloneInstance names come from the target and the start second: each execution starts in a
    // second of its own, counting back from the benchmark's start.
    static BASE: OnceLock<OffsetDateTime> = OnceLock::new();
    static STARTED: AtomicI64 = AtomicI64::new(0);
    let name = if k == 0 { "bench-fixture".to_string() } else { format!("bench-{}-{k}", unique("x")) };
    let back = STARTED.fetch_add(1, Ordering::SeqCst);
    let base = *BASE.get_or_init(OffsetDateTime::now_utc);
    Execution {
        arn: Some(format!("arn:aws:states:us-east-1:123456789012:execution:refresh:{name}")),
        name,
        started_at: Some(base - time::Duration::seconds(back)),
    }
}
