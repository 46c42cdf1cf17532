# The whole stack of one environment. Environments (envs/*) are thin roots calling this module.

locals {
  name_prefix           = coalesce(var.name_prefix, "events-lake-${var.environment}")
  log_group_name_prefix = "/events-lake/${local.name_prefix}/"
  metrics_namespace     = "EventsLake/${var.environment}"
  # A writer reads whole shards: more writers than shards of a provisioned stream only stand by.
  writer_max_count = var.stream_mode == "PROVISIONED" ? min(var.writer_max_count, var.stream_shard_count) : var.writer_max_count
  tags = merge({
    project     = "events-lake"
    environment = var.environment
  }, var.tags)
}

module "kms" {
  source = "../kms"

  name_prefix             = local.name_prefix
  log_group_name_prefix   = local.log_group_name_prefix
  deletion_window_in_days = var.kms_deletion_window_in_days
  tags                    = local.tags
}

module "network" {
  source = "../network"

  name_prefix           = local.name_prefix
  kms_key_arn           = module.kms.key_arn
  log_group_name_prefix = local.log_group_name_prefix

  create_vpc       = var.create_vpc
  vpc_cidr         = var.vpc_cidr
  vpc_id           = var.vpc_id
  subnet_ids       = var.subnet_ids
  route_table_ids  = var.route_table_ids
  create_endpoints = var.create_vpc || var.create_vpc_endpoints

  tags = local.tags
}

module "data_plane" {
  source = "../data_plane"

  name_prefix = local.name_prefix
  kms_key_arn = module.kms.key_arn

  stream_mode            = var.stream_mode
  stream_shard_count     = var.stream_shard_count
  stream_retention_hours = var.stream_retention_hours

  table_prefix                       = var.table_prefix
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  delta_log_expiration_days          = var.delta_log_expiration_days
  dynamodb_deletion_protection       = var.dynamodb_deletion_protection
  athena_bytes_scanned_cutoff        = var.athena_bytes_scanned_cutoff

  tags = local.tags
}

module "iam" {
  source = "../iam"

  name_prefix               = local.name_prefix
  kms_key_arn               = module.kms.key_arn
  stream_arn                = module.data_plane.stream_arn
  lake_bucket_arn           = module.data_plane.lake_bucket_arn
  events_table_key_prefix   = module.data_plane.events_table_key_prefix
  rejected_table_key_prefix = module.data_plane.rejected_table_key_prefix
  lock_table_arn            = module.data_plane.lock_table_arn
  lease_table_arn           = module.data_plane.lease_table_arn
  metrics_namespace         = local.metrics_namespace

  glue_database_name        = module.data_plane.glue_database_name
  athena_workgroup_name     = module.data_plane.athena_workgroup_name
  athena_results_bucket_arn = module.data_plane.athena_results_bucket_arn

  tags = local.tags
}

# The task roles moved from modules/compute to modules/iam (the e2e root applies them alone).
moved {
  from = module.compute.aws_iam_role.writer
  to   = module.iam.aws_iam_role.writer
}

moved {
  from = module.compute.aws_iam_role_policy.writer
  to   = module.iam.aws_iam_role_policy.writer
}

moved {
  from = module.compute.aws_iam_role.compactor
  to   = module.iam.aws_iam_role.compactor
}

moved {
  from = module.compute.aws_iam_role_policy.compactor
  to   = module.iam.aws_iam_role_policy.compactor
}

module "compute" {
  source = "../compute"

  name_prefix = local.name_prefix
  kms_key_arn = module.kms.key_arn

  stream_name               = module.data_plane.stream_name
  stream_arn                = module.data_plane.stream_arn
  lake_bucket_name          = module.data_plane.lake_bucket_name
  lake_bucket_arn           = module.data_plane.lake_bucket_arn
  events_table_key_prefix   = module.data_plane.events_table_key_prefix
  rejected_table_key_prefix = module.data_plane.rejected_table_key_prefix
  events_table_uri          = module.data_plane.events_table_uri
  rejected_table_uri        = module.data_plane.rejected_table_uri
  lock_table_name           = module.data_plane.lock_table_name
  lock_table_arn            = module.data_plane.lock_table_arn
  lease_table_name          = module.data_plane.lease_table_name
  lease_table_arn           = module.data_plane.lease_table_arn
  writer_role_arn           = module.iam.writer_role_arn
  compactor_role_arn        = module.iam.compactor_role_arn

  vpc_id           = module.network.vpc_id
  subnet_ids       = module.network.subnet_ids
  assign_public_ip = var.assign_public_ip
  image_tag        = var.image_tag
  cpu_architecture = var.cpu_architecture

  writer_mode             = var.writer_mode
  writer_schedule_minutes = var.writer_schedule_minutes
  writer_exit_when_idle   = var.writer_exit_when_idle
  writer_desired_count    = var.writer_desired_count
  writer_max_count        = local.writer_max_count
  writer_cpu              = var.writer_cpu
  writer_memory           = var.writer_memory
  writer_dedupe_memory_mb = var.writer_dedupe_memory_mb
  writer_flush_interval   = var.writer_flush_interval
  writer_dedupe_keys      = var.writer_dedupe_keys
  writer_metrics_port     = var.writer_metrics_port
  rust_log                = var.rust_log

  compactor_cpu                 = var.compactor_cpu
  compactor_memory              = var.compactor_memory
  compactor_schedule_expression = var.compactor_schedule_expression

  metrics_namespace     = local.metrics_namespace
  log_group_name_prefix = local.log_group_name_prefix
  log_retention_days    = var.log_retention_days

  enable_container_insights = var.enable_container_insights

  tags = local.tags
}

module "monitoring" {
  source = "../monitoring"

  name_prefix       = local.name_prefix
  kms_key_arn       = module.kms.key_arn
  metrics_namespace = local.metrics_namespace

  stream_name                                     = module.data_plane.stream_name
  cluster_name                                    = module.compute.cluster_name
  cluster_arn                                     = module.compute.cluster_arn
  writer_service_name                             = module.compute.writer_service_name
  writer_schedule_minutes                         = var.writer_mode == "scheduled" ? var.writer_schedule_minutes : null
  writer_desired_count                            = var.writer_desired_count
  writer_log_group_name                           = module.compute.writer_log_group_name
  compactor_log_group_name                        = module.compute.compactor_log_group_name
  compactor_task_definition_arns_without_revision = values(module.compute.compactor_task_definition_arns_without_revision)
  schedule_group_name                             = module.compute.schedule_group_name

  alarm_email_addresses            = var.alarm_email_addresses
  iterator_age_threshold_ms        = var.iterator_age_threshold_ms
  rejected_threshold               = var.rejected_threshold
  compactor_success_window_seconds = var.compactor_success_window_seconds

  tags = local.tags
}
