//! AWS configuration: the SDK's default chain only (environment, profile, web identity,
//! container and instance credentials; `AWS_REGION`; `AWS_ENDPOINT_URL` and per-service
//! `AWS_ENDPOINT_URL_<SERVICE>`), so one binary runs against AWS and an emulator alike.
//!
//! Retries: the SDK's standard mode (exponential backoff with full jitter on throttling,
//! 5xx and transport errors), with more attempts than the default because a commit that
//! gives up is far more expensive than one that waits.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use tokio::sync::OnceCell;

/// Attempts per AWS call (first try included).
pub const MAX_ATTEMPTS: u32 = 10;

/// The process-wide SDK configuration, loaded once.
pub async fn sdk_config() -> &'static SdkConfig {
    static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();
    CONFIG
        .get_or_init(|| async {
            aws_config::defaults(BehaviorVersion::latest())
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(MAX_ATTEMPTS)
                        .with_initial_backoff(Duration::from_millis(50))
                        .with_max_backoff(Duration::from_secs(5)),
                )
                .load()
                .await
        })
        .await
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk_config().await)
}

#[derive(Debug, thiserror::Error)]
#[error("DynamoDB table {table}: {step}: {message}")]
pub struct TableSetupError {
    pub table: String,
    pub step: &'static str,
    pub message: String,
}

/// Outcome of an idempotent create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Created {
    Created,
    AlreadyExisted,
}

/// Make sure a DynamoDB table exists: describe it first, and only when it is missing create
/// it (on-demand billing, string hash key and optional string range key), wait until it is
/// active, and enable TTL on `ttl_attribute`. Idempotent.
///
/// Describing first matters on AWS: a service role that may use a table (Terraform created
/// it) must not need `dynamodb:CreateTable`, and AWS checks permissions *before* existence,
/// so calling CreateTable on an existing table answers AccessDenied rather than
/// ResourceInUse. A missing permission is reported by name.
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    hash_key: &str,
    range_key: Option<&str>,
    ttl_attribute: Option<&str>,
) -> Result<Created, TableSetupError> {
    let err = |step: &'static str, message: String| TableSetupError {
        table: table.to_string(),
        step,
        message,
    };
    match client.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(Created::AlreadyExisted),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => {
            return Err(err(
                "describe",
                permission_hint(&e, "dynamodb:DescribeTable"),
            ));
        }
    }
    let created = create_table(client, table, hash_key, range_key)
        .await
        .map_err(|(step, m)| err(step, m))?;
    wait_active(client, table)
        .await
        .map_err(|m| err("describe", m))?;
    if let Some(ttl) = ttl_attribute {
        enable_ttl(client, table, ttl)
            .await
            .map_err(|(step, m)| err(step, m))?;
    }
    Ok(created)
}

/// CreateTable with on-demand billing and string keys; a table created by someone else
/// between our describe and this call counts as existing.
async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    hash_key: &str,
    range_key: Option<&str>,
) -> Result<Created, (&'static str, String)> {
    let schema_err = |e: aws_sdk_dynamodb::error::BuildError| ("build schema", e.to_string());
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(schema_err)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(schema_err)
    };
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(hash_key)?)
        .key_schema(key(hash_key, KeyType::Hash)?);
    if let Some(r) = range_key {
        req = req
            .attribute_definitions(attr(r)?)
            .key_schema(key(r, KeyType::Range)?);
    }
    match req.send().await {
        Ok(_) => Ok(Created::Created),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(Created::AlreadyExisted)
        }
        Err(e) => Err(("create", permission_hint(&e, "dynamodb:CreateTable"))),
    }
}

/// Poll until the table is ACTIVE (a new on-demand table takes seconds on AWS), for at most
/// about a minute; a table still creating after that is left to the caller's first use.
async fn wait_active(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), String> {
    for _ in 0..120 {
        let d = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())?;
        let status = d.table().and_then(|t| t.table_status().cloned());
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Turn TTL on for `attribute`; "already enabled" is success (idempotent re-runs).
async fn enable_ttl(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    attribute: &str,
) -> Result<(), (&'static str, String)> {
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(|e| ("build ttl", e.to_string()))?;
    if let Err(e) = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        let msg = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
        if !msg.contains("already enabled") && !msg.contains("TimeToLive is already") {
            return Err(("enable TTL", msg));
        }
    }
    Ok(())
}

/// The SDK error as text; for an access-denied answer, led by the permission that is missing
/// (the raw AWS message names the action only sometimes, and never says what to do).
fn permission_hint<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>, action: &str) -> String
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string();
    let denied = e
        .as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c.contains("AccessDenied") || c.contains("UnrecognizedClient"));
    if denied {
        format!(
            "missing IAM permission {action} (create the table with Terraform or `writer lock-table create` run by an administrator, or grant the permission): {text}"
        )
    } else {
        text
    }
}
