variable "name_prefix" {
  description = "Prefix of every resource name of this environment."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the SNS alarm topic (its key policy must let cloudwatch.amazonaws.com and events.amazonaws.com use it; module kms does)."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the metrics derived from the logs, e.g. \"EventsLake/dev\"."
  type        = string
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the alarm topic (each must confirm the subscription)."
  type        = list(string)
  default     = []
}

variable "stream_name" {
  description = "Kinesis stream name."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster ARN."
  type        = string
}

variable "writer_service_name" {
  description = "ECS service of the writer; null when the writer runs as a scheduled task (writer_schedule_minutes)."
  type        = string
}

variable "writer_schedule_minutes" {
  description = "null: the writer is an always-on service. A number: the writer runs as a scheduled task every that many minutes (compute writer_mode = \"scheduled\"); the alarms that assume an always-on reader are adapted (see main.tf)."
  type        = number
  default     = null
}

variable "writer_desired_count" {
  description = "Desired writer task count; fewer running tasks than this raises the writer-down alarm (service mode only)."
  type        = number
}

variable "writer_log_group_name" {
  description = "Log group of the writer."
  type        = string
}

variable "compactor_log_group_name" {
  description = "Log group of the compactor."
  type        = string
}

variable "compactor_task_definition_arns_without_revision" {
  description = "Compactor task definition ARNs without revision, one per table (match stopped compactor tasks)."
  type        = list(string)
}

variable "schedule_group_name" {
  description = "EventBridge Scheduler group of the compactor schedules (its failed invocations alarm)."
  type        = string
}

variable "iterator_age_threshold_ms" {
  description = "Alarm when the oldest unread Kinesis record is older than this (writer lagging)."
  type        = number
  default     = 300000
}

variable "rejected_threshold" {
  description = "Alarm when more records than this are rejected within 5 minutes."
  type        = number
  default     = 100
}

variable "commit_latency_threshold_ms" {
  description = "Alarm when the average commit latency over 5 minutes exceeds this."
  type        = number
  default     = 20000
}

variable "freshness_threshold_ms" {
  description = "Alarm when the p99 time from Kinesis arrival to visible in the table exceeds this over 5 minutes (the writer aims at its flush interval)."
  type        = number
  default     = 60000
}

variable "writer_errors_threshold" {
  description = "Alarm when the writer logs more ERROR lines than this within 5 minutes."
  type        = number
  default     = 0
}

variable "no_commit_window_minutes" {
  description = "Alarm when records reach the stream but no batch is committed for this many minutes (freshness when no commit happens at all)."
  type        = number
  default     = 15

  validation {
    condition     = var.no_commit_window_minutes >= 5 && var.no_commit_window_minutes <= 60
    error_message = "no_commit_window_minutes must be between 5 and 60."
  }
}

variable "compactor_success_window_seconds" {
  description = "Alarm when no compactor run succeeded within this window (a multiple of 60, at most 86400; use about twice the schedule interval)."
  type        = number
  default     = 43200

  validation {
    condition     = var.compactor_success_window_seconds % 60 == 0 && var.compactor_success_window_seconds <= 86400
    error_message = "compactor_success_window_seconds must be a multiple of 60 and at most 86400."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
