variable "environment" {
  description = "Environment name (dev, staging, prod): part of names, tags and the metrics namespace."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.environment))
    error_message = "environment must be 2-12 lowercase letters/digits, starting with a letter."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name. null = \"events-lake-<environment>\"."
  type        = string
  default     = null
}

# ---------------------------------------------------------------- stream

variable "stream_mode" {
  description = "Kinesis capacity mode: PROVISIONED or ON_DEMAND."
  type        = string
  default     = "PROVISIONED"
}

variable "stream_shard_count" {
  description = "Shards when stream_mode = PROVISIONED."
  type        = number
  default     = 1
}

variable "stream_retention_hours" {
  description = "Kinesis retention in hours (24-8760)."
  type        = number
  default     = 24
}

# ---------------------------------------------------------------- lake

variable "table_prefix" {
  description = "Key prefix of the Delta tables in the lake bucket."
  type        = string
  default     = "lake"
}

variable "noncurrent_version_expiration_days" {
  description = "Days deleted/overwritten lake objects stay recoverable."
  type        = number
  default     = 30
}

variable "delta_log_expiration_days" {
  description = "Optional S3 expiry of old _delta_log/ objects (null = Delta's own log clean-up only)."
  type        = number
  default     = null
}

variable "dynamodb_deletion_protection" {
  description = "Deletion protection of the lock and lease tables."
  type        = bool
  default     = false
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period of a scheduled KMS key deletion."
  type        = number
  default     = 30
}

variable "athena_bytes_scanned_cutoff" {
  description = "Per-query scan limit of the Athena workgroup in bytes."
  type        = number
  default     = 1099511627776
}

# ---------------------------------------------------------------- compute

variable "create_vpc" {
  description = "Create a private-only VPC (no NAT) with the data path's VPC endpoints for the tasks (modules/network). false: use vpc_id / subnet_ids."
  type        = bool
  default     = false
}

variable "vpc_cidr" {
  description = "CIDR of the created VPC (create_vpc)."
  type        = string
  default     = "10.40.0.0/16"
}

variable "create_vpc_endpoints" {
  description = "With an existing VPC: also create the S3/DynamoDB gateway and Kinesis/ECR/Logs/STS interface endpoints in it (false when it already has them or uses NAT)."
  type        = bool
  default     = false
}

variable "route_table_ids" {
  description = "Route tables of subnet_ids, for the gateway endpoints (create_vpc_endpoints with an existing VPC)."
  type        = list(string)
  default     = []
}

variable "vpc_id" {
  description = "VPC of the ECS tasks (unless create_vpc)."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id != null || var.create_vpc
    error_message = "Set vpc_id and subnet_ids, or create_vpc = true."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the ECS tasks (unless create_vpc)."
  type        = list(string)
  default     = []
}

variable "assign_public_ip" {
  description = "Public IP on the tasks (public subnets without NAT only)."
  type        = bool
  default     = false
}

variable "image_tag" {
  description = "Image tag (in the environment's ECR repository) the writer and compactor run."
  type        = string
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64."
  type        = string
  default     = "X86_64"
}

variable "writer_mode" {
  description = "\"service\": the writer is an always-on ECS service (autoscaled between writer_desired_count and writer_max_count). \"scheduled\": no service; EventBridge Scheduler runs `writer run --exit-when-idle` every writer_schedule_minutes (low volume, see README \"Low-volume profile\")."
  type        = string
  default     = "service"
}

variable "writer_schedule_minutes" {
  description = "writer_mode = \"scheduled\": minutes between writer runs (5-30)."
  type        = number
  default     = 10
}

variable "writer_exit_when_idle" {
  description = "writer_mode = \"scheduled\": `--exit-when-idle` of each run (e.g. \"20s\"); well below the period."
  type        = string
  default     = "20s"
}

variable "enable_container_insights" {
  description = "Container Insights on the ECS cluster (the writer-down alarm of service mode needs it; its metrics are billed as custom metrics)."
  type        = bool
  default     = true
}

variable "writer_desired_count" {
  description = "Number of writer tasks (service mode; the autoscaling minimum)."
  type        = number
  default     = 1
}

variable "writer_max_count" {
  description = "Upper bound of writer autoscaling (0 or writer_desired_count = no scaling). Capped at stream_shard_count for a PROVISIONED stream: more writers than shards only stand by."
  type        = number
  default     = 0
}

variable "writer_cpu" {
  description = "CPU units of a writer task."
  type        = number
  default     = 1024
}

variable "writer_memory" {
  description = "Memory (MiB) of a writer task."
  type        = number
  default     = 2048
}

variable "writer_dedupe_memory_mb" {
  description = "WRITER_DEDUPE_MEMORY_MB (dedupe key index budget). null = 40% of writer_memory."
  type        = number
  default     = null
}

variable "writer_dedupe_keys" {
  description = "WRITER_DEDUPE_KEYS: \"all\" or \"own-shards\" (several writers on one table; README, Dedupe)."
  type        = string
  default     = "all"
}

variable "writer_flush_interval" {
  description = "WRITER_FLUSH_INTERVAL."
  type        = string
  default     = "30s"
}

variable "writer_metrics_port" {
  description = "WRITER_METRICS_PORT (/healthz)."
  type        = number
  default     = 9898
}

variable "rust_log" {
  description = "RUST_LOG of writer and compactor."
  type        = string
  default     = "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn"
}

variable "compactor_cpu" {
  description = "CPU units of the compactor task."
  type        = number
  default     = 2048
}

variable "compactor_memory" {
  description = "Memory (MiB) of the compactor task."
  type        = number
  default     = 8192
}

variable "compactor_schedule_expression" {
  description = "EventBridge Scheduler expression of the compactor (hourly at 1x: what the soak benchmark measures)."
  type        = string
  default     = "rate(1 hour)"
}

variable "compactor_success_window_seconds" {
  description = "Alarm when no compactor run succeeded within this window (about twice the schedule interval, at most 86400)."
  type        = number
  default     = 43200
}

variable "log_retention_days" {
  description = "Retention of the ECS log groups."
  type        = number
  default     = 30
}

# ---------------------------------------------------------------- alarms

variable "alarm_email_addresses" {
  description = "E-mail subscribers of the alarm topic."
  type        = list(string)
  default     = []
}

variable "iterator_age_threshold_ms" {
  description = "Kinesis iterator-age alarm threshold (ms)."
  type        = number
  default     = 300000
}

variable "rejected_threshold" {
  description = "Rejected records per 5 minutes that raise the alarm."
  type        = number
  default     = 100
}

variable "tags" {
  description = "Extra tags of every resource (project/environment tags are added)."
  type        = map(string)
  default     = {}
}
