variable "name_prefix" {
  description = "Prefix of every resource name of this environment, e.g. \"events-lake-dev\"."
  type        = string
}

variable "log_group_name_prefix" {
  description = "CloudWatch Logs group names this key may encrypt (the key policy only lets CloudWatch Logs use it for log groups starting with this)."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion takes effect (7-30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
