variable "name_prefix" {
  description = "Prefix of every resource name of this environment, e.g. \"events-lake-dev\"."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the environment's KMS key (stream, buckets, tables)."
  type        = string
}

variable "stream_arn" {
  description = "Kinesis stream ARN."
  type        = string
}

variable "lake_bucket_arn" {
  description = "Lake bucket ARN."
  type        = string
}

variable "events_table_key_prefix" {
  description = "S3 key prefix of the events table, e.g. \"lake/events\" (no trailing slash)."
  type        = string
}

variable "rejected_table_key_prefix" {
  description = "S3 key prefix of the rejected table, e.g. \"lake/events_rejected\" (no trailing slash)."
  type        = string
}

variable "lock_table_arn" {
  description = "DynamoDB commit-lock table ARN."
  type        = string
}

variable "lease_table_arn" {
  description = "DynamoDB shard-lease table ARN."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace the tasks may publish metrics to (cloudwatch:PutMetricData is limited to it)."
  type        = string
}

# ---------------------------------------------------------------- analysts (Athena)

variable "glue_database_name" {
  description = "Glue database of the lake tables (analysts read it)."
  type        = string
}

variable "athena_workgroup_name" {
  description = "Athena workgroup of the analysts. null = no analyst policy (Athena disabled)."
  type        = string
  default     = null
}

variable "athena_results_bucket_arn" {
  description = "ARN of the Athena results bucket (required with athena_workgroup_name)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
