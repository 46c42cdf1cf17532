# Delta commit lock: exactly the schema of Spark's S3DynamoDBLogStore (and delta-rs'
# S3DynamoDbLogStore), so Spark, delta-rs writers and the compactor can share one table.
resource "aws_dynamodb_table" "lock" {
  name                        = "${var.name_prefix}-delta-lock"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "tablePath"
  range_key                   = "fileName"
  deletion_protection_enabled = var.dynamodb_deletion_protection

  attribute {
    name = "tablePath"
    type = "S"
  }

  attribute {
    name = "fileName"
    type = "S"
  }

  ttl {
    attribute_name = "expireTime"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.enable_point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

# Shard leases of the writer fleet (which writer task reads which Kinesis shard, checkpoints).
resource "aws_dynamodb_table" "lease" {
  name                        = "${var.name_prefix}-shard-leases"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "leaseKey"
  deletion_protection_enabled = var.dynamodb_deletion_protection

  attribute {
    name = "leaseKey"
    type = "S"
  }

  point_in_time_recovery {
    enabled = var.enable_point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}
