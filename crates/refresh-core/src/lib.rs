//! The shared core of the DBLab refresh orchestrator: one module per concern.

pub mod aws;
pub mod clock;
pub mod cost;
pub mod dblab;
pub mod duration;
pub mod error;
pub mod executions;
pub mod fleet;
pub mod history;
pub mod metrics;
pub mod naming;
pub mod notification;
pub mod poll;
pub mod preflight;
pub mod rds;
pub mod redaction;
pub mod request;
pub mod row;
pub mod run;
pub mod secrets;
pub mod stopped;
pub mod summary;
pub mod sweep;
pub mod tags;
pub mod text;
pub mod watch;

pub use error::RefreshError;
pub use request::RefreshRequest;

/// The clients every handler builds from one AWS configuration.
pub mod clients {
    pub use aws_config::SdkConfig;
    pub use aws_sdk_dynamodb::Client as DynamoDb;
    pub use aws_sdk_ec2::Client as Ec2;
    pub use aws_sdk_kms::Client as Kms;
    pub use aws_sdk_rds::Client as Rds;
    pub use aws_sdk_secretsmanager::Client as SecretsManager;
    pub use aws_sdk_sfn::Client as StepFunctions;
    pub use aws_sdk_sns::Client as Sns;
}
