# dev: smallest footprint. One provisioned shard (cheapest at low volume), one writer,
# short retentions, everything destroyable.
module "stack" {
  source = "../../modules/stack"

  environment = "dev"

  stream_mode            = "PROVISIONED"
  stream_shard_count     = 1
  stream_retention_hours = 24

  noncurrent_version_expiration_days = 7
  dynamodb_deletion_protection       = false
  kms_deletion_window_in_days        = 7
  athena_bytes_scanned_cutoff        = 107374182400 # 100 GiB

  vpc_id             = var.vpc_id
  subnet_ids         = var.subnet_ids
  image_tag          = var.image_tag
  rust_log           = "info,writer=debug,compactor=debug"
  log_retention_days = 14

  # Scaling settings (issue 15): shard mode/count above; writer mode, count (autoscaling
  # min/max), size and flush interval here.
  writer_mode           = "service"
  writer_desired_count  = 1 # autoscaling min
  writer_max_count      = 1 # autoscaling max (= min: fixed; 1 shard = 1 useful writer)
  writer_cpu            = 512
  writer_memory         = 1024
  writer_flush_interval = "30s"

  compactor_cpu                    = 1024
  compactor_memory                 = 4096
  compactor_schedule_expression    = "rate(12 hours)" # dev: slower than the hourly 1x schedule
  compactor_success_window_seconds = 86400

  alarm_email_addresses = var.alarm_email_addresses
  rejected_threshold    = 1000
}
