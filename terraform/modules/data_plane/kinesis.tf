resource "aws_kinesis_stream" "events" {
  name             = "${var.name_prefix}-events"
  shard_count      = var.stream_mode == "PROVISIONED" ? var.stream_shard_count : null
  retention_period = var.stream_retention_hours

  encryption_type = var.stream_encryption_enabled ? "KMS" : "NONE"
  kms_key_id      = var.stream_encryption_enabled ? var.kms_key_arn : null

  stream_mode_details {
    stream_mode = var.stream_mode
  }

  tags = var.tags
}
