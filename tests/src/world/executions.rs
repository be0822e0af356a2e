//! Executions registered in emulated Step Functions, for handlers that read their history.

use super::World;
use refresh_core::run::Execution;
use serde_json::Value;
use time::OffsetDateTime;

impl World {
    pub fn execution(&self) -> Execution {
        let name = format!("exec-{}", self.id);
        Execution {
            arn: Some(format!("arn:aws:states:us-east-1:123456789012:execution:refresh:{name}")),
            name,
            started_at: Some(OffsetDateTime::now_utc()),
        }
    }

    /// An execution that stays RUNNING (a state machine that waits ten minutes).
    pub async fn running_execution(&self, label: &str) -> Execution {
        self.running_execution_of(label, None).await
    }

    /// A running execution started with `input`, as a refresh is started with its request.
    pub async fn running_execution_of(&self, label: &str, input: Option<&Value>) -> Execution {
        let definition = r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}"#;
        self.execution_of(label, definition, input).await
    }

    /// An execution that fails after a few seconds with `States.Runtime`, the error no Catch
    /// of the refresh machine handles.
    pub async fn failing_execution(&self, label: &str) -> Execution {
        self.execution_of(
            label,
            r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":2,"Next":"P"},
                "P":{"Type":"Pass","Parameters":{"x.$":"$.missing"},"End":true}}}"#,
            None,
        )
        .await
    }

    async fn execution_of(&self, label: &str, definition: &str, input: Option<&Value>) -> Execution {
        let machine = self
            .sfn
            .create_state_machine()
            .name(format!("machine-{label}-{}", self.id))
            .role_arn("arn:aws:iam::123456789012:role/sfn")
            .definition(definition)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let name = format!("{label}-{}", self.id);
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(machine.state_machine_arn())
            .name(&name)
            .set_input(input.map(Value::to_string))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        Execution { name, arn: Some(started.execution_arn().to_string()), started_at: None }
    }
}
