# Data plane (KMS key, Kinesis stream, lake bucket, DynamoDB lock/lease tables, Glue, Athena)
# and the IAM of everything that touches it (writer and compactor task roles, producer and
# analyst policies: modules/iam, exactly as the stack deploys them), without ECS. Used by
# integration-tests/test_terraform_apply.py and test_terraform_iam.py (moto with IAM
# enforcement: the binaries run under these roles), and usable against a real account for
# running the writer locally.

locals {
  emulated = var.aws_endpoint_url != ""
}

provider "aws" {
  region = var.aws_region

  access_key                  = local.emulated ? var.emulator_access_key : null
  secret_key                  = local.emulated ? var.emulator_secret_key : null
  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_requesting_account_id  = false
  s3_use_path_style           = local.emulated

  dynamic "endpoints" {
    for_each = local.emulated ? [var.aws_endpoint_url] : []
    content {
      athena     = endpoints.value
      cloudwatch = endpoints.value
      dynamodb   = endpoints.value
      glue       = endpoints.value
      iam        = endpoints.value
      kinesis    = endpoints.value
      kms        = endpoints.value
      logs       = endpoints.value
      s3         = endpoints.value
      sns        = endpoints.value
      sts        = endpoints.value
    }
  }

  default_tags {
    tags = {
      project     = "events-lake"
      environment = "e2e"
      managed-by  = "terraform"
    }
  }
}

module "kms" {
  source = "../modules/kms"

  name_prefix             = var.name_prefix
  log_group_name_prefix   = "/events-lake/${var.name_prefix}/"
  deletion_window_in_days = 7
}

module "data_plane" {
  source = "../modules/data_plane"

  name_prefix = var.name_prefix
  kms_key_arn = module.kms.key_arn

  stream_mode        = "PROVISIONED"
  stream_shard_count = 1

  stream_encryption_enabled     = var.stream_encryption_enabled
  enable_point_in_time_recovery = var.enable_point_in_time_recovery
  enable_athena                 = var.enable_athena
  enable_athena_named_queries   = var.enable_athena_named_queries

  # Throwaway: destroy must succeed with objects in the buckets.
  force_destroy = true
}

module "iam" {
  source = "../modules/iam"

  name_prefix               = var.name_prefix
  kms_key_arn               = module.kms.key_arn
  stream_arn                = module.data_plane.stream_arn
  lake_bucket_arn           = module.data_plane.lake_bucket_arn
  events_table_key_prefix   = module.data_plane.events_table_key_prefix
  rejected_table_key_prefix = module.data_plane.rejected_table_key_prefix
  lock_table_arn            = module.data_plane.lock_table_arn
  lease_table_arn           = module.data_plane.lease_table_arn
  metrics_namespace         = "EventsLake/e2e"

  glue_database_name        = module.data_plane.glue_database_name
  athena_workgroup_name     = module.data_plane.athena_workgroup_name
  athena_results_bucket_arn = module.data_plane.athena_results_bucket_arn
}
