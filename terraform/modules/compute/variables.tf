variable "name_prefix" {
  description = "Prefix of every resource name of this environment, e.g. \"events-lake-dev\"."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the environment's KMS key (stream, bucket, tables, logs, ECR)."
  type        = string
}

# ---------------------------------------------------------------- data plane (module data_plane outputs)

variable "stream_name" {
  description = "Kinesis stream name."
  type        = string
}

variable "stream_arn" {
  description = "Kinesis stream ARN."
  type        = string
}

variable "lake_bucket_name" {
  description = "Lake bucket name."
  type        = string
}

variable "lake_bucket_arn" {
  description = "Lake bucket ARN."
  type        = string
}

variable "events_table_key_prefix" {
  description = "S3 key prefix of the events table, e.g. \"lake/events\"."
  type        = string
}

variable "rejected_table_key_prefix" {
  description = "S3 key prefix of the rejected table, e.g. \"lake/events_rejected\"."
  type        = string
}

variable "events_table_uri" {
  description = "s3:// URI of the events table."
  type        = string
}

variable "rejected_table_uri" {
  description = "s3:// URI of the rejected table."
  type        = string
}

variable "lock_table_name" {
  description = "DynamoDB commit-lock table name."
  type        = string
}

variable "lock_table_arn" {
  description = "DynamoDB commit-lock table ARN."
  type        = string
}

variable "lease_table_name" {
  description = "DynamoDB shard-lease table name."
  type        = string
}

variable "lease_table_arn" {
  description = "DynamoDB shard-lease table ARN."
  type        = string
}

variable "writer_role_arn" {
  description = "Task role of the writer (module iam)."
  type        = string
}

variable "compactor_role_arn" {
  description = "Task role of the compactor (module iam)."
  type        = string
}

# ---------------------------------------------------------------- network

variable "vpc_id" {
  description = "VPC of the tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the tasks (private subnets with a NAT gateway or VPC endpoints for Kinesis, S3, DynamoDB, ECR, Logs, CloudWatch, STS)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "At least one subnet is needed."
  }
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (only for public subnets without NAT; keep false)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- image

variable "image_tag" {
  description = "Tag of the image (built from the repository's Dockerfile) in this environment's ECR repository."
  type        = string
}

variable "cpu_architecture" {
  description = "CPU architecture of the image and the Fargate tasks: X86_64 or ARM64 (ARM64 is ~20% cheaper)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

# ---------------------------------------------------------------- writer

variable "writer_mode" {
  description = "How the writer runs: \"service\" (an always-on ECS service with autoscaling, the default) or \"scheduled\" (no service: EventBridge Scheduler starts one `writer run --exit-when-idle` task every writer_schedule_minutes; for low volumes, see README \"Low-volume profile\")."
  type        = string
  default     = "service"

  validation {
    condition     = contains(["service", "scheduled"], var.writer_mode)
    error_message = "writer_mode must be \"service\" or \"scheduled\"."
  }
}

variable "writer_schedule_minutes" {
  description = "writer_mode = \"scheduled\": minutes between two writer runs (5-30). Worst-case freshness is about this period + task start-up + writer_flush_interval."
  type        = number
  default     = 10

  validation {
    condition     = var.writer_schedule_minutes >= 5 && var.writer_schedule_minutes <= 30 && floor(var.writer_schedule_minutes) == var.writer_schedule_minutes
    error_message = "writer_schedule_minutes must be a whole number between 5 and 30."
  }
}

variable "writer_exit_when_idle" {
  description = "writer_mode = \"scheduled\": `writer run --exit-when-idle` value: the run stops once its shards delivered no record for this long (and nothing is buffered or unread). Keep it well below the schedule period and a few times the mean gap between records (280 events/h: one every ~13 s, so \"20s\" ends a run ~50 s after it caught up on average)."
  type        = string
  default     = "20s"

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m)$", var.writer_exit_when_idle))
    error_message = "writer_exit_when_idle must be a duration like \"20s\" or \"1m\" (units ms, s, m)."
  }
}

variable "writer_desired_count" {
  description = "Number of writer tasks (writer_mode service; min of autoscaling). Shards are spread over the tasks through the lease table; more tasks than shards only adds standby."
  type        = number
  default     = 1
}

variable "wait_for_steady_state" {
  description = "terraform apply waits until the writer service is stable (and fails if its deployment is rolled back)."
  type        = bool
  default     = true
}

variable "writer_max_count" {
  description = "Upper bound of writer autoscaling. Equal to writer_desired_count (default 0 = same) disables scaling; the stack caps it at the shard count of a provisioned stream."
  type        = number
  default     = 0
}

variable "writer_cpu_target_percent" {
  description = "Target average CPU of the writer tasks (autoscaling)."
  type        = number
  default     = 60
}

variable "writer_scale_out_iterator_age_ms" {
  description = "Add a writer task when the Kinesis iterator age stays above this for 5 minutes (autoscaling)."
  type        = number
  default     = 120000
}

variable "writer_cpu" {
  description = "Fargate CPU units of a writer task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "writer_memory" {
  description = "Fargate memory of a writer task in MiB."
  type        = number
  default     = 2048
}

variable "writer_stop_timeout_seconds" {
  description = "stopTimeout of the writer container: seconds ECS waits after SIGTERM before SIGKILL (Fargate allows at most 120). WRITER_SHUTDOWN_DEADLINE is set 15 s shorter."
  type        = number
  default     = 120

  validation {
    condition     = var.writer_stop_timeout_seconds >= 30 && var.writer_stop_timeout_seconds <= 120
    error_message = "writer_stop_timeout_seconds must be between 30 and 120 (Fargate maximum)."
  }
}

variable "writer_dedupe_memory_mb" {
  description = "WRITER_DEDUPE_MEMORY_MB: memory budget of the writer's dedupe key index (events table). null = 40% of writer_memory."
  type        = number
  default     = null

  validation {
    condition     = var.writer_dedupe_memory_mb == null || try(var.writer_dedupe_memory_mb >= 64, false)
    error_message = "writer_dedupe_memory_mb must be null or at least 64."
  }
}

variable "writer_dedupe_keys" {
  description = "WRITER_DEDUPE_KEYS: \"all\" (every writer holds every key of the partitions it writes: exact for any copy of an event; each writer reads the files the others add) or \"own-shards\" (each writer holds the keys of its own shards: exact for copies sharing a Kinesis partition key; no reads of other writers' files, so several writers scale). See README, Dedupe."
  type        = string
  default     = "all"

  validation {
    condition     = contains(["all", "own-shards"], var.writer_dedupe_keys)
    error_message = "writer_dedupe_keys must be \"all\" or \"own-shards\"."
  }
}

variable "writer_flush_interval" {
  description = "WRITER_FLUSH_INTERVAL: how often the writer commits a batch (e.g. \"30s\"). Shorter = fresher data, more, smaller files and more S3/DynamoDB requests."
  type        = string
  default     = "30s"
}

variable "writer_metrics_port" {
  description = "WRITER_METRICS_PORT: port of the writer's /healthz and metrics endpoint (inside the task only)."
  type        = number
  default     = 9898
}

variable "rust_log" {
  description = "RUST_LOG of writer and compactor."
  type        = string
  default     = "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn"
}

variable "writer_extra_environment" {
  description = "Additional environment variables of the writer container."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- compactor

variable "compactor_cpu" {
  description = "Fargate CPU units of the compactor task."
  type        = number
  default     = 2048
}

variable "compactor_memory" {
  description = "Fargate memory of the compactor task in MiB."
  type        = number
  default     = 8192
}

variable "compactor_schedule_expression" {
  description = "EventBridge Scheduler expression of the compactor runs, e.g. \"rate(1 hour)\" (1x, what the soak benchmark assumes) or \"cron(30 0 * * ? *)\" (daily, low volume)."
  type        = string
  default     = "rate(1 hour)"
}

variable "compactor_schedule_timezone" {
  description = "Time zone of cron schedule expressions."
  type        = string
  default     = "UTC"
}

variable "compactor_schedule_enabled" {
  description = "Whether the compactor schedule is enabled."
  type        = bool
  default     = true
}

variable "compactor_extra_environment" {
  description = "Additional environment variables of the compactor container."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- observability

variable "metrics_namespace" {
  description = "CloudWatch namespace the tasks may publish metrics to (cloudwatch:PutMetricData is limited to it)."
  type        = string
}

variable "log_group_name_prefix" {
  description = "Prefix of the log group names, e.g. \"/events-lake/events-lake-dev/\" (must match the KMS key policy)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the writer and compactor log groups."
  type        = number
  default     = 30
}

variable "enable_container_insights" {
  description = "Container Insights on the cluster (needed by the writer-down alarm on RunningTaskCount)."
  type        = bool
  default     = true
}

variable "ecr_tagged_image_retention_count" {
  description = "If set, the ECR repository expires tagged images beyond the newest N pushes. null (default) never expires a tagged image, so the image in service or a rollback target is never removed (untagged images always expire after a day)."
  type        = number
  default     = null

  validation {
    condition     = var.ecr_tagged_image_retention_count == null || try(var.ecr_tagged_image_retention_count >= 10, false)
    error_message = "ecr_tagged_image_retention_count must be null or at least 10."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
