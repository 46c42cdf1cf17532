data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  lake_bucket_name    = coalesce(var.lake_bucket_name, "${var.name_prefix}-lake-${local.account_id}")
  results_bucket_name = "${var.name_prefix}-athena-${local.account_id}"
  glue_database_name  = coalesce(var.glue_database_name, replace(var.name_prefix, "-", "_"))

  # S3 key prefixes (no trailing slash) and URIs of the two Delta tables.
  events_key_prefix   = "${var.table_prefix}/${var.events_table_name}"
  rejected_key_prefix = "${var.table_prefix}/${var.rejected_table_name}"
  events_table_uri    = "s3://${local.lake_bucket_name}/${local.events_key_prefix}"
  rejected_table_uri  = "s3://${local.lake_bucket_name}/${local.rejected_key_prefix}"
  table_key_prefixes  = { events = local.events_key_prefix, rejected = local.rejected_key_prefix }
}
