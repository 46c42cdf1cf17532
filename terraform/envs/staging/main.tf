# staging: production-like (two writers, provisioned shards sized for a replay of prod traffic),
# shorter retentions.
module "stack" {
  source = "../../modules/stack"

  environment = "staging"

  stream_mode            = "PROVISIONED"
  stream_shard_count     = 2
  stream_retention_hours = 48

  noncurrent_version_expiration_days = 14
  dynamodb_deletion_protection       = false
  kms_deletion_window_in_days        = 14

  vpc_id             = var.vpc_id
  subnet_ids         = var.subnet_ids
  image_tag          = var.image_tag
  log_retention_days = 30

  # Scaling settings (issue 15): shard mode/count above; writer mode, count (autoscaling
  # min/max), size and flush interval here.
  writer_mode           = "service"
  writer_desired_count  = 2 # autoscaling min
  writer_max_count      = 2 # autoscaling max (= min: fixed; capped at the shard count anyway)
  writer_cpu            = 1024
  writer_memory         = 2048
  writer_flush_interval = "30s"

  # Hourly at 1x: what the soak benchmark (issue 14) measures; alarm after 3 h without success.
  compactor_cpu                    = 2048
  compactor_memory                 = 8192
  compactor_schedule_expression    = "rate(1 hour)"
  compactor_success_window_seconds = 10800

  alarm_email_addresses = var.alarm_email_addresses
}
