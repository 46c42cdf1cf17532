variable "name_prefix" {
  description = "Prefix of every resource name of this environment, e.g. \"events-lake-dev\". Lowercase letters, digits and hyphens."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name_prefix))
    error_message = "name_prefix must be 3-31 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer-managed KMS key encrypting the stream, buckets and tables."
  type        = string
}

# ---------------------------------------------------------------- Kinesis

variable "stream_mode" {
  description = "Kinesis capacity mode: PROVISIONED (pay per shard-hour, set stream_shard_count) or ON_DEMAND (pay per GB, scales by itself)."
  type        = string
  default     = "PROVISIONED"

  validation {
    condition     = contains(["PROVISIONED", "ON_DEMAND"], var.stream_mode)
    error_message = "stream_mode must be PROVISIONED or ON_DEMAND."
  }
}

variable "stream_shard_count" {
  description = "Shard count when stream_mode = PROVISIONED (1 shard = 1 MB/s or 1000 records/s in, 2 MB/s out). Ignored for ON_DEMAND."
  type        = number
  default     = 1
}

variable "stream_retention_hours" {
  description = "How long Kinesis keeps records (24-8760). More than 24 h costs extra, but gives time to recover a stopped writer."
  type        = number
  default     = 24
}

variable "stream_encryption_enabled" {
  description = "Server-side encryption of the stream with kms_key_arn. Only the emulator test turns it off."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------- S3 lake bucket

variable "lake_bucket_name" {
  description = "Name of the lake bucket. null = \"<name_prefix>-lake-<account id>\"."
  type        = string
  default     = null
}

variable "table_prefix" {
  description = "Key prefix (no leading or trailing slash) under which the Delta tables live, e.g. \"lake\" -> s3://bucket/lake/events."
  type        = string
  default     = "lake"
}

variable "events_table_name" {
  description = "Name of the events Delta table: its directory under table_prefix and its Glue table name."
  type        = string
  default     = "events"
}

variable "rejected_table_name" {
  description = "Name of the rejected-events Delta table: its directory under table_prefix and its Glue table name."
  type        = string
  default     = "events_rejected"
}

variable "enable_versioning" {
  description = "S3 versioning of the lake bucket (see README: on, with noncurrent versions expiring after noncurrent_version_expiration_days)."
  type        = bool
  default     = true
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten/deleted object versions (vacuumed data files, cleaned-up log files) are removed for good."
  type        = number
  default     = 30
}

variable "tmp_object_expiration_days" {
  description = "Days after which temporary commit files under _delta_log/.tmp/ (S3DynamoDBLogStore) and _delta_log/_commit_* (delta-rs staging) are deleted. An incomplete lock entry has no TTL and needs its .tmp/ file until a writer, compactor or reader repairs it (storage/src/lock/dynamodb.rs): at least 30 days."
  type        = number
  default     = 30

  validation {
    condition     = var.tmp_object_expiration_days >= 30
    error_message = "tmp_object_expiration_days must be at least 30: an incomplete commit-lock entry (no TTL until completed) needs its temp file until it is repaired, e.g. after an environment was scaled to zero for a while."
  }
}

variable "delta_log_expiration_days" {
  description = "If set, S3 also expires _delta_log/ objects older than this. Only safe when the table is checkpointed more often than that (the scheduled compactor does it for both tables); null (default) leaves log clean-up to Delta's own logRetentionDuration."
  type        = number
  default     = null

  validation {
    condition     = var.delta_log_expiration_days == null || try(var.delta_log_expiration_days >= 30, false)
    error_message = "delta_log_expiration_days must be null or at least 30 (well above the tables' delta.logRetentionDuration of 7 days)."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy non-empty buckets / Athena workgroups. true only for throwaway environments."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- DynamoDB

variable "enable_point_in_time_recovery" {
  description = "Point-in-time recovery of the lock and lease tables."
  type        = bool
  default     = true
}

variable "dynamodb_deletion_protection" {
  description = "Deletion protection of the lock and lease tables."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- Glue / Athena

variable "glue_database_name" {
  description = "Glue database name. null = name_prefix with '-' replaced by '_'."
  type        = string
  default     = null
}

variable "enable_rejected_glue_table" {
  description = "Also register the rejected-events table in Glue."
  type        = bool
  default     = true
}

variable "enable_athena" {
  description = "Create the Athena workgroup, its results bucket and the named queries."
  type        = bool
  default     = true
}

variable "enable_athena_named_queries" {
  description = "Create the saved Athena queries (only when enable_athena is true)."
  type        = bool
  default     = true
}

variable "athena_results_expiration_days" {
  description = "Days after which Athena query results are deleted."
  type        = number
  default     = 30
}

variable "athena_bytes_scanned_cutoff" {
  description = "Per-query scan limit of the workgroup in bytes (guards against accidental full scans). null = no limit."
  type        = number
  default     = 1099511627776 # 1 TiB
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
