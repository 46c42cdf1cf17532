# lowvolume: ~1/1000 of the 1x design point (~280 events/hour, ~0.2 M events/month). Nothing
# runs all the time: the writer is a scheduled task (every 10 minutes, `writer run
# --exit-when-idle 20s`), the compactor runs once a day, one provisioned shard, no NAT gateway
# (public subnets, tasks with a public IP), the smallest Fargate size. Freshness: ~period/2 +
# start-up on average, at worst one period + start-up + flush (~12 minutes). Costs and the
# reasoning: terraform/README.md "Low-volume profile".
module "stack" {
  source = "../../modules/stack"

  environment = "lowvolume"

  # One provisioned shard: $0.015/shard-hour (~$11/month) against ~$29/month of the ON_DEMAND
  # stream charge alone; 280 events/h is ~0.08 records/s of the shard's 1,000/s.
  stream_mode            = "PROVISIONED"
  stream_shard_count     = 1
  stream_retention_hours = 24 # covers many missed runs; the minimum (and cheapest)

  noncurrent_version_expiration_days = 7
  dynamodb_deletion_protection       = true
  kms_deletion_window_in_days        = 30
  athena_bytes_scanned_cutoff        = 10737418240 # 10 GiB

  # No NAT gateway (~$33/month) and no interface endpoints (~$7/month each per AZ): the tasks
  # run in public subnets with a public IP (security group: no ingress, HTTPS egress only).
  vpc_id               = var.vpc_id
  subnet_ids           = var.subnet_ids
  assign_public_ip     = true
  create_vpc_endpoints = false

  image_tag          = var.image_tag
  log_retention_days = 7

  # The only metric that needs Container Insights is the service's RunningTaskCount (writer-down
  # alarm), which scheduled mode does not have.
  enable_container_insights = false

  # Scaling settings (issue 15): shard mode/count above; writer mode, size and flush here.
  writer_mode             = "scheduled"
  writer_schedule_minutes = 10
  writer_exit_when_idle   = "20s" # mean gap between records ~13 s: a run ends ~50 s after catching up
  writer_desired_count    = 1     # one task per run (no service, no autoscaling)
  writer_max_count        = 1
  writer_cpu              = 256 # smallest Fargate size: 0.25 vCPU / 0.5 GB
  writer_memory           = 512
  # A day of keys at this volume is ~7k x 16 B; 128 MiB + the rejected index (128 MiB) leave
  # 256 MiB for Arrow batches, Parquet encoding and the table snapshot.
  writer_dedupe_memory_mb = 128
  writer_flush_interval   = "30s"

  # Daily, after midnight UTC (yesterday's partitions are complete); alarm after a day without success.
  compactor_cpu                    = 512
  compactor_memory                 = 1024
  compactor_schedule_expression    = "cron(30 0 * * ? *)"
  compactor_success_window_seconds = 86400

  alarm_email_addresses = var.alarm_email_addresses
  rejected_threshold    = 100
}
