//! `poll-refresh`: watches the engine (one look per poll interval, for as long as the
//! invocation may) and returns the refresh with a status the Choice state routes on
//! (`pending`, `ready` = done, `failed` with the engine's alert, `timed_out`) as soon as
//! it is no longer `pending`. The rules are `refresh_core::dblab::advance`: a refresh the
//! engine accepted but never started, lost to an engine restart, or `finished` without
//! the engine's snapshot of it, is a failure.

use refresh_core::RefreshError;
use refresh_core::dblab;
use refresh_core::dblab::Refresh;
use refresh_core::poll::PollStatus;
use refresh_core::request::RefreshRequest;
use refresh_core::run::Execution;
use refresh_core::secrets::SecretReader;
use refresh_core::watch::Watch;
use serde::Deserialize;
use time::OffsetDateTime;
use tracing::info;

pub struct Deps {
    pub secrets: SecretReader,
    pub dblab: dblab::Connector,
    /// The engines the stack may drive (`DblabEngines`).
    pub engines: dblab::EngineList,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: RefreshRequest,
    pub refresh: Refresh,
}

pub async fn handle(deps: &Deps, input: Input, watch: Watch) -> Result<Refresh, RefreshError> {
    let request = &input.request;
    let engine = deps.engines.resolve(request)?;
    // The engine's alerts quote its tools, which may quote a connection string.
    let password = deps.secrets.read(&request.source.password_secret_arn, "password").await?;
    let client =
        deps.dblab.connect(&deps.secrets, engine, &request.dblab).await?.within(watch.deadline()).hiding(&password);
    let look = |prev: Refresh| {
        let client = &client;
        async move {
            let next = dblab::advance(&prev, &dblab::look(client, &prev).await?, OffsetDateTime::now_utc());
            info!(status = ?next.status, retrieval = %next.retrieval_status, phase = ?next.phase, seen_start = next.seen_start, polls = next.polls, snapshot = ?next.snapshot.as_ref().map(|s| &s.id), "refresh polled");
            Ok(next)
        }
    };
    // The clone is released as soon as the dump is over: that ends the watch too.
    let act = |r: &Refresh| r.status != PollStatus::Pending || r.release_clone;
    let poll = request.dblab.poll_interval;
    let mut refresh = watch.run(input.refresh, |r| r.next_look_in(poll), dblab::LOOK_TIME, look, act).await?;
    refresh.wait_seconds = refresh.next_look_in(poll).as_secs();
    Ok(refresh)
}
