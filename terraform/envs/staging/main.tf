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

  writer_desired_count  = 2
  writer_cpu            = 1024
  writer_memory         = 2048
  writer_flush_interval = "30s"

  compactor_cpu                 = 2048
  compactor_memory              = 8192
  compactor_schedule_expression = "rate(6 hours)"

  alarm_email_addresses = var.alarm_email_addresses
}
