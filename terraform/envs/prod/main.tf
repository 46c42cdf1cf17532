# prod: on-demand stream (absorbs bursts without resharding; switch to PROVISIONED with enough
# shards once traffic is steady - cheaper, see README), 7 days of stream retention to replay
# after an incident, two writers, deletion protection, long retentions.
module "stack" {
  source = "../../modules/stack"

  environment = "prod"

  stream_mode            = "ON_DEMAND"
  stream_retention_hours = 168

  noncurrent_version_expiration_days = 30
  dynamodb_deletion_protection       = true
  kms_deletion_window_in_days        = 30

  vpc_id             = var.vpc_id
  subnet_ids         = var.subnet_ids
  image_tag          = var.image_tag
  log_retention_days = 90

  # Scaling settings (issue 15): stream mode above (ON_DEMAND: no shard count); writer mode,
  # count (autoscaling min/max), size and flush interval here. Raise writer_max_count to let
  # the writers scale out on CPU / iterator age.
  writer_mode           = "service"
  writer_desired_count  = 2 # autoscaling min
  writer_max_count      = 2 # autoscaling max (= min: fixed count)
  writer_cpu            = 1024
  writer_memory         = 2048
  writer_flush_interval = "30s"
  # Two writers at 1x: each holding every key (exact for any copy) costs little. With 4 or
  # more writers on the table, "own-shards" (README, Dedupe; SCALING.md §2).
  writer_dedupe_keys = "all"

  # Hourly at 1x: what the soak benchmark (issue 14) measures; alarm after 3 h without success.
  compactor_cpu                    = 2048
  compactor_memory                 = 8192
  compactor_schedule_expression    = "rate(1 hour)"
  compactor_success_window_seconds = 10800

  alarm_email_addresses = var.alarm_email_addresses
}
