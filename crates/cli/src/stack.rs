//! Where the deployed stack's parts are: from `--stack` (its outputs), or named one by one.

use std::collections::BTreeMap;

use refresh_core::RefreshError;
use refresh_core::clients::SdkConfig;
use refresh_core::dblab::EngineList;

use crate::failure::Failure;

/// Where the stack's parts are: from `--stack` (its outputs), or named one by one.
#[derive(clap::Args)]
pub(crate) struct StackArgs {
    /// The deployed stack, whose outputs name the state machine, history table, schedule
    /// group and scheduler role.
    #[arg(long, env = "DBLAB_REFRESH_STACK")]
    stack: Option<String>,
    #[arg(long, env = "DBLAB_REFRESH_STATE_MACHINE")]
    state_machine: Option<String>,
    #[arg(long, env = "DBLAB_REFRESH_TABLE")]
    table: Option<String>,
    #[arg(long, env = "DBLAB_REFRESH_SCHEDULE_GROUP")]
    schedule_group: Option<String>,
    #[arg(long, env = "DBLAB_REFRESH_SCHEDULER_ROLE")]
    scheduler_role: Option<String>,
    /// Where a schedule puts a start it could not deliver within the hour.
    #[arg(long, env = "DBLAB_REFRESH_SCHEDULE_DLQ")]
    schedule_dlq: Option<String>,
    /// The stack's DblabEngines (its entries, comma-separated), when --stack does not give them.
    #[arg(long, env = "DBLAB_REFRESH_ENGINES")]
    engines: Option<String>,
}

pub(crate) struct Stack {
    state_machine: Option<String>,
    pub(crate) table: Option<String>,
    pub(crate) schedule_group: Option<String>,
    scheduler_role: Option<String>,
    pub(crate) schedule_dlq: Option<String>,
    /// The stack's `DblabEngines` parameter, as the stack was deployed with it.
    engines: Option<String>,
}

impl Stack {
    /// A part named explicitly (its flag or its variable) wins over the stack's output.
    pub(crate) async fn resolve(args: StackArgs, config: &SdkConfig) -> Result<Self, Failure> {
        let mut outputs = BTreeMap::new();
        let mut parameters = BTreeMap::new();
        if let Some(name) = &args.stack {
            let out = aws_sdk_cloudformation::Client::new(config)
                .describe_stacks()
                .stack_name(name)
                .send()
                .await
                .map_err(|e| Failure::from(RefreshError::from_aws("DescribeStacks", e)))?;
            for stack in out.stacks() {
                for o in stack.outputs() {
                    if let (Some(k), Some(v)) = (o.output_key(), o.output_value()) {
                        outputs.insert(k.to_string(), v.to_string());
                    }
                }
                for p in stack.parameters() {
                    if let (Some(k), Some(v)) = (p.parameter_key(), p.parameter_value()) {
                        parameters.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        let take = |given: Option<String>, key: &str| given.or_else(|| outputs.get(key).cloned());
        Ok(Self {
            state_machine: take(args.state_machine, "RefreshStateMachineArn"),
            table: take(args.table, "HistoryTableName"),
            schedule_group: take(args.schedule_group, "ScheduleGroupName"),
            scheduler_role: take(args.scheduler_role, "SchedulerRoleArn"),
            schedule_dlq: take(args.schedule_dlq, "ScheduleDeadLetterQueueArn"),
            engines: args.engines.or_else(|| parameters.get("DblabEngines").cloned()),
        })
    }

    fn need<'a>(value: &'a Option<String>, what: &str, flag: &str, variable: &str) -> Result<&'a str, Failure> {
        value
            .as_deref()
            .ok_or_else(|| Failure::usage(format!("the {what} is unknown: pass --stack NAME, or {flag} ({variable})")))
    }

    pub(crate) fn state_machine(&self) -> Result<&str, Failure> {
        Self::need(&self.state_machine, "state machine", "--state-machine", "DBLAB_REFRESH_STATE_MACHINE")
    }

    pub(crate) fn group(&self) -> Result<&str, Failure> {
        Self::need(&self.schedule_group, "schedule group", "--schedule-group", "DBLAB_REFRESH_SCHEDULE_GROUP")
    }

    pub(crate) fn scheduler_role(&self) -> Result<&str, Failure> {
        Self::need(&self.scheduler_role, "scheduler role", "--scheduler-role", "DBLAB_REFRESH_SCHEDULER_ROLE")
    }

    /// The engines a request may name, or wrong usage.
    pub(crate) fn engines(&self) -> Result<EngineList, Failure> {
        engines_arg(Self::need(&self.engines, "stack's engine list", "--engines", "DBLAB_REFRESH_ENGINES")?)
    }

    pub(crate) fn table(&self) -> Result<&str, Failure> {
        Self::need(&self.table, "history table", "--table", "DBLAB_REFRESH_TABLE")
    }
}

/// The stack's `DblabEngines` as given on the command line, or wrong usage.
pub(crate) fn engines_arg(text: &str) -> Result<EngineList, Failure> {
    EngineList::parse(text).map_err(|e| Failure::usage(format!("--engines (the stack's DblabEngines): {e}")))
}
