//! The engine's rules: which engine, how it is reached, and how a refresh on it is timed.

use std::time::Duration;

use serde_json::Value;

use crate::duration;
use crate::request::checks::*;
use crate::request::fields as f;
use crate::request::model::*;
use crate::request::reader::{Obj, Reader};

impl Reader {
    pub(super) fn dblab(&mut self, value: &Value) -> Option<DblabSpec> {
        let mut obj = self.object(value, "dblab")?;
        let engine = self.text(&mut obj, &f::DBLAB_ENGINE);
        self.check(f::DBLAB_ENGINE.key, engine.as_ref(), |name| check_target(name).map_err(|e| format!("name {e}")));
        let api_endpoint = self.text(&mut obj, &f::DBLAB_API_ENDPOINT).and_then(|e| match check_endpoint(&e) {
            Ok(normalized) => Some(normalized),
            Err(msg) => {
                self.err(f::DBLAB_API_ENDPOINT.key, msg);
                None
            }
        });
        if !obj.map.contains_key("engine") && !obj.map.contains_key("apiEndpoint") {
            self.err(
                f::DBLAB_ENGINE.key,
                "required: the name of one of the stack's engines (its DblabEngines parameter), or dblab.apiEndpoint, its address",
            );
        }
        self.refused(&mut obj, &f::DBLAB_TOKEN);
        let token_secret_arn = self.text(&mut obj, &f::DBLAB_TOKEN_SECRET_ARN);
        self.check(f::DBLAB_TOKEN_SECRET_ARN.key, token_secret_arn.as_ref(), check_secret_arn);
        self.moved(&mut obj, &f::DBLAB_INSECURE);
        self.moved(&mut obj, &f::DBLAB_ALLOW_PLAINTEXT);
        let allow_ignored_errors = self.flag(&mut obj, &f::DBLAB_ALLOW_IGNORED_ERRORS);
        let allow_lvm = self.flag(&mut obj, &f::DBLAB_ALLOW_LVM);
        let ca_certificate = self.text(&mut obj, &f::DBLAB_CA_CERTIFICATE);
        if let Some(pem) = &ca_certificate
            && reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_or(true, |certs| certs.is_empty())
        {
            self.err(f::DBLAB_CA_CERTIFICATE.key, "must be one or more PEM certificates (-----BEGIN CERTIFICATE-----)");
        }
        let poll_interval = self.period(&mut obj, &f::DBLAB_POLL_INTERVAL);
        let timeout = self.period(&mut obj, &f::DBLAB_TIMEOUT);
        let start_timeout = self.start_timeout(&mut obj, poll_interval, timeout);
        let restore_parallel_jobs =
            self.whole(&mut obj, &f::DBLAB_RESTORE_PARALLEL_JOBS).and_then(|n| u32::try_from(n).ok());
        self.finish(obj);
        Some(DblabSpec {
            engine,
            api_endpoint,
            token_secret_arn,
            ca_certificate,
            poll_interval,
            timeout,
            start_timeout,
            restore_parallel_jobs,
            allow_ignored_errors,
            allow_lvm,
        })
    }

    /// `dblab.startTimeout`: long enough for at least two looks after the trigger, and at
    /// most half of `dblab.timeout`, or it would not shorten anything. By default five
    /// minutes (three polls when they are slower); a `dblab.timeout` too short for a start
    /// window of its own is the start window too.
    pub(super) fn start_timeout(&mut self, obj: &mut Obj<'_>, poll: Duration, timeout: Duration) -> Duration {
        let ceiling = timeout / 2;
        let mut default = f::DBLAB_START_TIMEOUT.default_period().max(poll * 3).min(ceiling);
        if default < poll * 2 {
            default = timeout;
        }
        let explicit = obj.map.get(f::DBLAB_START_TIMEOUT.name()).is_some_and(|v| !v.is_null());
        let chosen = self.period_or(obj, &f::DBLAB_START_TIMEOUT, default);
        if !explicit {
            return chosen;
        }
        if chosen < poll * 2 {
            self.err(
                f::DBLAB_START_TIMEOUT.key,
                format!(
                    "{} must allow two polls of dblab.pollInterval ({}): lengthen it or poll more often",
                    duration::format(chosen),
                    duration::format(poll)
                ),
            );
        } else if chosen > ceiling {
            self.err(
                f::DBLAB_START_TIMEOUT.key,
                format!(
                    "must be at most half of dblab.timeout ({}): it is how soon a refresh the engine never started is given up on",
                    duration::format(ceiling)
                ),
            );
        }
        chosen
    }
}
