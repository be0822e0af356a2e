//! The one message a run sends: a subject that reads well in an inbox list, a body that
//! says what happened and why, and attributes for subscription filters.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::RefreshError;
use crate::row::{Outcome, RunSummary};

/// SNS wants subjects of ASCII printable characters only, "less than 100" of them.
const MAX_SUBJECT: usize = 99;

pub struct Message {
    pub subject: String,
    pub body: String,
    pub attributes: Vec<(&'static str, String)>,
}

fn when(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_default()
}

fn span(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3_600, (seconds % 3_600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m"),
    }
}

/// Printable ASCII only: anything else (line breaks, tabs, other control characters,
/// non-ASCII letters) would make SNS refuse the whole message.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { ' ' }).collect()
}

/// Cuts `text` to `max` characters, ending in "..." when it had to cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!("{}...", &text[..max.saturating_sub(3)])
}

/// "DBLab refresh of TARGET: OUTCOME", within SNS's limits; a long target is shortened
/// first, so the outcome stays readable in an inbox list.
fn subject(target: &str, outcome: &str) -> String {
    let (target, outcome) = (printable(target), printable(outcome));
    let fixed = "DBLab refresh of : ".len() + outcome.len();
    let target = cut(&target, MAX_SUBJECT.saturating_sub(fixed).max(8));
    cut(&format!("DBLab refresh of {target}: {outcome}"), MAX_SUBJECT)
}

pub fn compose(summary: &RunSummary) -> Message {
    let outcome = match (summary.outcome, &summary.error) {
        (Outcome::Succeeded, _) => {
            let as_of = summary.data_as_of.map_or_else(String::new, |t| format!(", data as of {}", when(t)));
            // A refresh that worked but left its clone running says so where it is seen first.
            let left = if summary.clone_left_behind { "; clone left to the sweep" } else { "" };
            format!("succeeded{as_of}{left}")
        }
        (_, Some(e)) => format!("FAILED ({})", e.name),
        (_, None) => summary.outcome.as_str().to_string(),
    };
    let subject = subject(summary.target_label(), &outcome);

    let mut lines = vec![
        format!("Target:        {}", summary.target_label()),
        format!("Outcome:       {}", summary.outcome.as_str()),
    ];
    if let Some(asked) = &summary.invalid_target {
        lines.insert(1, format!("Asked for:     target {asked}, which is not a valid target name"));
    }
    if let Some(e) = &summary.error {
        lines.push(format!("Error:         {}", e.name));
        lines.push(format!("What happened: {}", e.message));
        if let Some(state) = &e.state {
            lines.push(format!("Failed in:     {state}"));
        }
    }
    lines.push(format!("Clean-up:      {}", summary.cleanup));
    lines.push(String::new());
    if let (Some(kind), Some(id)) = (&summary.source_type, &summary.source_identifier) {
        lines.push(format!("Source:        {kind} {id}"));
    }
    if let Some(from) = summary.restored_from.as_ref().or(summary.snapshot_identifier.as_ref()) {
        lines.push(format!("Restored from: {from}"));
    }
    if let Some(t) = summary.data_as_of {
        lines.push(format!("Data as of:    {}", when(t)));
    }
    if let Some(clone) = &summary.clone_identifier {
        let class = summary.clone_class.as_deref().unwrap_or("?");
        lines.push(format!("Clone:         {clone} ({class})"));
    }
    if let Some(seconds) = summary.clone_lifetime_seconds {
        lines.push(format!("Clone lived:   {}", span(seconds)));
    }
    if let Some(engine) = &summary.engine_version {
        lines.push(format!("DBLab Engine:  {engine}"));
    }
    if let Some(snapshot) = &summary.engine_snapshot {
        let read = summary.engine_data_state_at.as_deref().map_or_else(String::new, |t| format!(", dump read at {t}"));
        lines.push(format!("Pool snapshot: {snapshot}{read}"));
    }
    if let Some(unproven) = &summary.unproven {
        lines.push(format!("Warning:       {unproven}"));
    }
    if let Some(emptied) = &summary.engine_pool_emptied {
        lines.push(format!("Engine pool:   {emptied}"));
    }
    if let Some(warning) = &summary.ignored_errors {
        lines.push(format!("Warning:       {warning}"));
    }
    if let Some(cost) = &summary.cost {
        lines.push(format!("Cost (est.):   {}", cost.describe()));
    }
    lines.push(format!("Started:       {}", when(summary.started_at)));
    if let Some(seconds) = summary.duration_seconds() {
        lines.push(format!("Duration:      {}", span(seconds)));
    }
    if !summary.phases.is_empty() {
        lines.push(String::new());
        lines.push("Phases:".into());
        for phase in &summary.phases {
            let took = phase.seconds().map_or_else(|| "did not finish".to_string(), span);
            lines.push(format!("  {:<10} {took}", phase.name));
        }
    }
    lines.push(String::new());
    lines.push(format!("Execution:     {}", summary.execution_arn.as_deref().unwrap_or(&summary.execution_name)));
    Message {
        subject,
        body: lines.join("\n"),
        attributes: vec![
            ("outcome", summary.outcome.as_str().to_string()),
            ("target", summary.target_label().to_string()),
        ],
    }
}

pub struct Notifier {
    client: Client,
    topic_arn: String,
}

impl Notifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self { client, topic_arn: topic_arn.into() }
    }

    /// Publishes the message; returns the SNS message id.
    pub async fn publish(&self, message: &Message) -> Result<String, RefreshError> {
        let mut req = self.client.publish().topic_arn(&self.topic_arn).subject(&message.subject).message(&message.body);
        for (name, value) in &message.attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| RefreshError::Internal(e.to_string()))?;
            req = req.message_attributes(*name, attribute);
        }
        let out = req.send().await.map_err(|e| RefreshError::from_aws("Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{ErrorSummary, Phase};
    use time::macros::datetime;

    fn summary(outcome: Outcome) -> RunSummary {
        RunSummary {
            target: Some("staging".into()),
            invalid_target: None,
            execution_name: "run-1".into(),
            execution_arn: None,
            outcome,
            started_at: datetime!(2026-11-22 05:00 UTC),
            finished_at: Some(datetime!(2026-11-22 06:21 UTC)),
            source_type: Some("rds".into()),
            source_identifier: Some("prod".into()),
            source_mode: Some("snapshot".into()),
            snapshot_identifier: Some("rds:prod-2026-11-22-03-10".into()),
            restored_from: Some("snapshot rds:prod-2026-11-22-03-10".into()),
            data_as_of: Some(datetime!(2026-11-22 03:10 UTC)),
            clone_identifier: Some("dblab-refresh-staging-20261122-050000".into()),
            clone_class: Some("db.t3.medium".into()),
            clone_storage_type: None,
            engine_version: Some("v4.2.0-rc.3-20260721-1410 (4.2 API)".into()),
            engine_lock: Some("engine instance abc".into()),
            engine_snapshot: Some("dblab_pool@snapshot_20261122051500".into()),
            engine_data_state_at: Some("2026-11-22T05:15:00Z".into()),
            ignored_errors: None,
            engine_pool_emptied: None,
            unproven: None,
            clone_lifetime_seconds: Some(4_740),
            clone_billed_seconds: Some(4_200),
            copy_identifier: None,
            copy_gb: None,
            copy_lifetime_seconds: None,
            clone_deleted_after_dump: false,
            phases: vec![Phase { name: "refresh".into(), started_at: datetime!(2026-11-22 05:12 UTC), ended_at: None }],
            error: None,
            cleanup: "clone dblab-refresh-staging-20261122-050000 deleted".into(),
            clone_left_behind: false,
            cost: None,
            duplicate_of: None,
        }
    }

    #[test]
    fn success_subject_names_target_and_data_age() {
        let m = compose(&summary(Outcome::Succeeded));
        assert_eq!(m.subject, "DBLab refresh of staging: succeeded, data as of 2026-11-22 03:10 UTC");
        assert!(m.body.contains("Restored from: snapshot rds:prod-2026-11-22-03-10"));
        assert!(m.body.contains("Clone lived:   1h 19m"));
        assert!(m.body.contains("did not finish"));
        assert!(
            m.body.contains("Pool snapshot: dblab_pool@snapshot_20261122051500, dump read at 2026-11-22T05:15:00Z"),
            "{}",
            m.body
        );
        assert!(!m.body.contains("Warning:"));
        assert_eq!(m.attributes, vec![("outcome", "succeeded".to_string()), ("target", "staging".to_string())]);
    }

    #[test]
    fn an_engine_that_ignores_restore_errors_is_said_to() {
        let mut s = summary(Outcome::Succeeded);
        s.ignored_errors = Some("the engine was configured to ignore restore errors".into());
        let m = compose(&s);
        assert!(m.body.contains("Warning:       the engine was configured to ignore restore errors"), "{}", m.body);
    }

    #[test]
    fn a_failure_says_which_pool_the_engine_emptied() {
        let mut s = summary(Outcome::Failed);
        s.engine_pool_emptied = Some("the engine's failed refresh emptied pool dblab_pool: ...".into());
        let m = compose(&s);
        assert!(m.body.contains("Engine pool:   the engine's failed refresh emptied pool dblab_pool"), "{}", m.body);
        assert!(!compose(&summary(Outcome::Failed)).body.contains("Engine pool:"));
    }

    #[test]
    fn failure_says_what_where_and_cleanup() {
        let mut s = summary(Outcome::Failed);
        s.error = Some(ErrorSummary {
            name: "RefreshFailed".into(),
            message: "pg_dump: role missing".into(),
            state: Some("PollRefresh".into()),
        });
        let m = compose(&s);
        assert_eq!(m.subject, "DBLab refresh of staging: FAILED (RefreshFailed)");
        assert!(m.body.contains("What happened: pg_dump: role missing"));
        assert!(m.body.contains("Failed in:     PollRefresh"));
        assert!(m.body.contains("Clean-up:      clone dblab-refresh-staging-20261122-050000 deleted"));
    }

    #[test]
    fn a_span_reads_in_its_two_largest_units() {
        assert_eq!(span(45), "45s");
        assert_eq!(span(303), "5m 03s");
        assert_eq!(span(3_600), "1h 00m");
        assert_eq!(span(26 * 3_600 + 5 * 60 + 59), "26h 05m");
    }

    #[test]
    fn subject_fits_sns_limits_with_the_longest_target_and_outcome() {
        let mut s = summary(Outcome::Failed);
        s.target = Some(format!("a{}", "-b".repeat(31))); // 63: the longest target a request may have
        for name in crate::error::names::ALL.iter().chain(crate::error::names::OUTCOMES) {
            s.error = Some(ErrorSummary { name: name.to_string(), message: "m".into(), state: None });
            let subject = compose(&s).subject;
            assert!(subject.len() < 100, "{} characters: {subject}", subject.len());
            assert!(subject.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{subject}");
            assert!(subject.ends_with(&format!("FAILED ({name})")), "the outcome stays whole: {subject}");
            let whole = subject.contains(s.target.as_deref().unwrap_or_default());
            assert!(whole || subject.contains("..."), "the target is whole or cut visibly: {subject}");
        }
        let mut ok = summary(Outcome::Succeeded);
        ok.target = Some("t".repeat(63));
        assert!(compose(&ok).subject.len() < 100);
        ok.target = Some("tab\there\r\nnewline-é".into());
        assert_eq!(
            compose(&ok).subject,
            "DBLab refresh of tab here  newline- : succeeded, data as of 2026-11-22 03:10 UTC"
        );
    }
}
