# ------------------------------------------------------------------ lake bucket
#
# Versioning decision: ON, with noncurrent versions expiring after
# noncurrent_version_expiration_days. Delta never overwrites a file (every commit/data file is
# new), so versioning costs only the retention window of deleted objects (vacuumed data files,
# cleaned-up logs) while protecting the table against an accidental delete or a bad vacuum.

resource "aws_s3_bucket" "lake" {
  #checkov:skip=CKV_AWS_18:Server access logging is done account-wide (CloudTrail data events / org log bucket), not per stack.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a per-organisation DR decision; the lake can be re-ingested from the stream's retention window only, see README.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications; the Delta log is the change feed.
  bucket        = local.lake_bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS requests (and their cost) by orders of magnitude.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = var.enable_versioning ? "Enabled" : "Suspended"
  }
}

resource "aws_s3_bucket_policy" "lake" {
  bucket = aws_s3_bucket.lake.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.lake.arn, "${aws_s3_bucket.lake.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.lake]
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    id     = "abort-incomplete-uploads-and-expire-old-versions"
    status = "Enabled"
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"
    filter {}

    expiration {
      expired_object_delete_marker = true
    }
  }

  # Temporary commit files: the S3DynamoDBLogStore protocol (Spark and storage/src/lock/dynamodb.rs)
  # writes _delta_log/.tmp/<version>.json.<uuid> and keeps it; delta-rs stages
  # _delta_log/_commit_<uuid>.json.tmp. A .tmp/ file is garbage once its lock entry is complete,
  # but an INCOMPLETE entry (writer died between the conditional put and the copy) has no TTL and
  # is repaired from that file by the next writer, compactor or reader - possibly after a long
  # pause (dev scaled to zero). Hence >= 30 days (variable validation), and the filters match only
  # these two temp-file prefixes: never N.json, checkpoints, _last_checkpoint or data files.
  dynamic "rule" {
    for_each = local.table_key_prefixes
    content {
      id     = "expire-${rule.key}-tmp-commits"
      status = "Enabled"
      filter {
        prefix = "${rule.value}/_delta_log/.tmp/"
      }
      expiration {
        days = var.tmp_object_expiration_days
      }
    }
  }

  dynamic "rule" {
    for_each = local.table_key_prefixes
    content {
      id     = "expire-${rule.key}-delta-rs-tmp-commits"
      status = "Enabled"
      filter {
        prefix = "${rule.value}/_delta_log/_commit_"
      }
      expiration {
        days = var.tmp_object_expiration_days
      }
    }
  }

  # Old log files: opt-in (see variable description); by default Delta's own log clean-up at
  # checkpoint time deletes them and the noncurrent-version rule above removes them for good.
  dynamic "rule" {
    for_each = var.delta_log_expiration_days == null ? {} : local.table_key_prefixes
    content {
      id     = "expire-${rule.key}-old-log-files"
      status = "Enabled"
      filter {
        prefix = "${rule.value}/_delta_log/"
      }
      expiration {
        days = var.delta_log_expiration_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.lake]
}

# ------------------------------------------------------------------ Athena results bucket

resource "aws_s3_bucket" "athena_results" {
  #checkov:skip=CKV_AWS_18:Server access logging is done account-wide (CloudTrail data events / org log bucket), not per stack.
  #checkov:skip=CKV_AWS_144:Athena query results are disposable; no cross-region replication.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications for query results.
  #checkov:skip=CKV_AWS_21:Query results are disposable (expire after athena_results_expiration_days); versioning would only keep garbage.
  count         = var.enable_athena ? 1 : 0
  bucket        = local.results_bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "athena_results" {
  count  = var.enable_athena ? 1 : 0
  bucket = aws_s3_bucket.athena_results[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "athena_results" {
  count                   = var.enable_athena ? 1 : 0
  bucket                  = aws_s3_bucket.athena_results[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "athena_results" {
  count  = var.enable_athena ? 1 : 0
  bucket = aws_s3_bucket.athena_results[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_policy" "athena_results" {
  count  = var.enable_athena ? 1 : 0
  bucket = aws_s3_bucket.athena_results[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.athena_results[0].arn, "${aws_s3_bucket.athena_results[0].arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.athena_results]
}

resource "aws_s3_bucket_lifecycle_configuration" "athena_results" {
  count  = var.enable_athena ? 1 : 0
  bucket = aws_s3_bucket.athena_results[0].id

  rule {
    id     = "expire-query-results"
    status = "Enabled"
    filter {}

    expiration {
      days = var.athena_results_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}
