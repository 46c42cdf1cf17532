data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name
  ns     = var.metrics_namespace

  # Writer as a scheduled task (low-volume mode): nothing reads the stream between runs, and a
  # run starts with records up to one period (+ task start-up) old. The alarms that assume an
  # always-on reader get thresholds of that order instead of paging after every run:
  # - iterator age: no data between runs is normal (notBreaching); threshold 2 periods, so one
  #   missed run does not page but two in a row do;
  # - freshness: p99 above one period + 5 minutes (start-up, catching up, flush);
  # - no commits: records arriving and no commit for 2 periods + 5 minutes (catches "nothing
  #   runs any more": schedule disabled, task crash-looping, RunTask failing);
  # - writer-down (RunningTaskCount of the service): there is no service, so no alarm; failed
  #   starts are caught by the schedule group's TargetErrorCount alarm (compactor_schedule_failing,
  #   which covers every schedule of the group) and by no-commits.
  writer_scheduled          = var.writer_schedule_minutes != null
  iterator_age_threshold_ms = local.writer_scheduled ? max(var.iterator_age_threshold_ms, 2 * var.writer_schedule_minutes * 60000) : var.iterator_age_threshold_ms
  freshness_threshold_ms    = local.writer_scheduled ? max(var.freshness_threshold_ms, (var.writer_schedule_minutes + 5) * 60000) : var.freshness_threshold_ms
  no_commit_window_minutes  = local.writer_scheduled ? max(var.no_commit_window_minutes, 2 * var.writer_schedule_minutes + 5) : var.no_commit_window_minutes
}

# ------------------------------------------------------------------ alarm topic

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          ArnLike = { "aws:SourceArn" = "arn:*:cloudwatch:${local.region}:*:alarm:${var.name_prefix}-*" }
        }
      },
      {
        Sid       = "EventBridgeRulePublishes"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.compactor_failed.arn }
        }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_email_addresses)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# ------------------------------------------------------------------ metrics from the JSON logs
#
# The writer logs (tracing-subscriber JSON, flattened) after each commit:
#   {"message":"batch committed","written":N,"duplicates":N,"rejected":N,"commit_ms":N,"version":N,
#    "freshness_ms":N (age of the batch's oldest record since its Kinesis arrival),...}
# the compactor "compactor run finished" / "compactor run failed".

locals {
  batch_committed = "{ $.message = \"batch committed\" }"

  writer_metric_filters = {
    events_written = { metric = "EventsWritten", pattern = local.batch_committed, value = "$.written", unit = "Count", default = 0 }
    duplicates     = { metric = "DuplicatesDropped", pattern = local.batch_committed, value = "$.duplicates", unit = "Count", default = 0 }
    rejected       = { metric = "EventsRejected", pattern = local.batch_committed, value = "$.rejected", unit = "Count", default = 0 }
    commit_latency = { metric = "CommitLatencyMs", pattern = local.batch_committed, value = "$.commit_ms", unit = "Milliseconds", default = null }
    freshness      = { metric = "FreshnessMs", pattern = "{ $.message = \"batch committed\" && $.freshness_ms = * }", value = "$.freshness_ms", unit = "Milliseconds", default = null }
    commits        = { metric = "BatchesCommitted", pattern = local.batch_committed, value = "1", unit = "Count", default = 0 }
    errors         = { metric = "WriterErrors", pattern = "{ $.level = \"ERROR\" }", value = "1", unit = "Count", default = 0 }
    shards_unread  = { metric = "ShardsUnread", pattern = "{ $.message = \"lease state\" && $.shards_unread = * }", value = "$.shards_unread", unit = "Count", default = null }
  }

  compactor_metric_filters = {
    compactor_succeeded = { metric = "CompactorRunsSucceeded", pattern = "{ $.message = \"compactor run finished\" }", value = "1", unit = "Count", default = 0 }
    compactor_failed    = { metric = "CompactorRunsFailed", pattern = "{ $.message = \"compactor run failed\" }", value = "1", unit = "Count", default = 0 }
  }
}

resource "aws_cloudwatch_log_metric_filter" "writer" {
  for_each       = local.writer_metric_filters
  name           = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  log_group_name = var.writer_log_group_name
  pattern        = each.value.pattern

  metric_transformation {
    name          = each.value.metric
    namespace     = local.ns
    value         = each.value.value
    unit          = each.value.unit
    default_value = each.value.default
  }
}

resource "aws_cloudwatch_log_metric_filter" "compactor" {
  for_each       = local.compactor_metric_filters
  name           = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  log_group_name = var.compactor_log_group_name
  pattern        = each.value.pattern

  metric_transformation {
    name          = each.value.metric
    namespace     = local.ns
    value         = each.value.value
    unit          = each.value.unit
    default_value = each.value.default
  }
}

# ------------------------------------------------------------------ alarms

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${var.name_prefix}-kinesis-iterator-age"
  alarm_description   = "The writer lags: the oldest unread record of ${var.stream_name} is older than ${local.iterator_age_threshold_ms} ms."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = var.stream_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.iterator_age_threshold_ms
  # Always-on writer: no GetRecords at all means nothing reads. Scheduled writer: normal between runs.
  treat_missing_data = local.writer_scheduled ? "notBreaching" : "breaching"
  alarm_actions      = local.alarm_actions
  ok_actions         = local.alarm_actions
  tags               = var.tags
}

# A readable shard that no writer reads (unowned, held by an expired lease, or owned by a
# writer that stopped reading it) has no GetRecords calls, hence no iterator age: the lag
# alarm above cannot see it. Every writer logs its view at least once a minute; the alarm
# fires when even the most optimistic writer saw unread shards for 10 minutes (far beyond a
# lease duration, so a normal takeover never trips it).
resource "aws_cloudwatch_metric_alarm" "shards_unread" {
  alarm_name          = "${var.name_prefix}-shards-unread"
  alarm_description   = "Shards of ${var.stream_name} with records nobody reads, for 10 minutes (see the writer's 'lease state' log lines)."
  namespace           = local.ns
  metric_name         = "ShardsUnread"
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.writer]
}

resource "aws_cloudwatch_metric_alarm" "rejected_spike" {
  alarm_name          = "${var.name_prefix}-rejected-spike"
  alarm_description   = "More than ${var.rejected_threshold} records rejected within 5 minutes (see the events_rejected table)."
  namespace           = local.ns
  metric_name         = "EventsRejected"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.rejected_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.writer]
}

resource "aws_cloudwatch_metric_alarm" "commit_latency" {
  alarm_name          = "${var.name_prefix}-commit-latency"
  alarm_description   = "Average Delta commit latency above ${var.commit_latency_threshold_ms} ms."
  namespace           = local.ns
  metric_name         = "CommitLatencyMs"
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.commit_latency_threshold_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.writer]
}

resource "aws_cloudwatch_metric_alarm" "freshness" {
  alarm_name          = "${var.name_prefix}-freshness"
  alarm_description   = "Events became visible in the table more than ${local.freshness_threshold_ms} ms after reaching Kinesis (p99 over 5 minutes)."
  namespace           = local.ns
  metric_name         = "FreshnessMs"
  extended_statistic  = "p99"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.freshness_threshold_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.writer]
}

moved {
  from = aws_cloudwatch_metric_alarm.writer_down
  to   = aws_cloudwatch_metric_alarm.writer_down[0]
}

# Service mode only (a scheduled writer has no service and is not running most of the time).
resource "aws_cloudwatch_metric_alarm" "writer_down" {
  count               = local.writer_scheduled ? 0 : 1
  alarm_name          = "${var.name_prefix}-writer-down"
  alarm_description   = "Fewer writer tasks running than desired (${var.writer_desired_count}) for 3 minutes (Container Insights RunningTaskCount)."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = var.cluster_name, ServiceName = var.writer_service_name }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = var.writer_desired_count
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "compactor_failed" {
  alarm_name          = "${var.name_prefix}-compactor-failed"
  alarm_description   = "A compactor run logged \"compactor run failed\"."
  namespace           = local.ns
  metric_name         = "CompactorRunsFailed"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  tags                = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.compactor]
}

# Missing data = no compactor log line at all in the window: before the first scheduled run of a
# new environment, or because nothing starts the task any more. "missing" keeps the alarm in
# INSUFFICIENT_DATA then (a new environment does not page); a run that logged anything but success
# emits 0 (metric filter default) and breaches. Schedules that fail to start the task are caught
# by compactor_schedule_failing, tasks that die by the EventBridge rule below.
resource "aws_cloudwatch_metric_alarm" "compactor_not_succeeding" {
  alarm_name          = "${var.name_prefix}-compactor-not-succeeding"
  alarm_description   = "Compactor runs logged in the last ${var.compactor_success_window_seconds} s, but none succeeded (INSUFFICIENT_DATA = no run logged at all in the window)."
  namespace           = local.ns
  metric_name         = "CompactorRunsSucceeded"
  statistic           = "Sum"
  period              = var.compactor_success_window_seconds
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.compactor]
}

resource "aws_cloudwatch_metric_alarm" "compactor_schedule_failing" {
  alarm_name          = "${var.name_prefix}-compactor-schedule-failing"
  alarm_description   = "EventBridge Scheduler could not start a compactor task${local.writer_scheduled ? " or a writer run" : ""} (RunTask failed: permissions, capacity, bad task definition)."
  namespace           = "AWS/Scheduler"
  metric_name         = "TargetErrorCount"
  dimensions          = { ScheduleGroup = var.schedule_group_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# ------------------------------------------------------------------ writer errors, producer throttling, no commits

resource "aws_cloudwatch_metric_alarm" "writer_errors" {
  alarm_name          = "${var.name_prefix}-writer-errors"
  alarm_description   = "The writer logged more than ${var.writer_errors_threshold} ERROR lines within 5 minutes (see the writer log group)."
  namespace           = local.ns
  metric_name         = "WriterErrors"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.writer_errors_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.writer]
}

resource "aws_cloudwatch_metric_alarm" "kinesis_write_throttled" {
  alarm_name          = "${var.name_prefix}-kinesis-write-throttled"
  alarm_description   = "Producers are throttled by ${var.stream_name} (WriteProvisionedThroughputExceeded): records are delayed, or dropped by producers that give up. Add shards or switch to ON_DEMAND."
  namespace           = "AWS/Kinesis"
  metric_name         = "WriteProvisionedThroughputExceeded"
  dimensions          = { StreamName = var.stream_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# The freshness alarm above needs commits to measure; when none happens at all (writer stuck,
# crash-looping, denied on S3) it has no data. This one fires when records keep arriving in the
# stream while no batch is committed for no_commit_window_minutes.
resource "aws_cloudwatch_metric_alarm" "no_commits" {
  alarm_name          = "${var.name_prefix}-no-commits"
  alarm_description   = "Records reach ${var.stream_name} but the writer committed no batch for ${local.no_commit_window_minutes} minutes."
  evaluation_periods  = local.no_commit_window_minutes
  datapoints_to_alarm = local.no_commit_window_minutes
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  # 1 for each minute with incoming records and no commit in the window up to it.
  metric_query {
    id          = "stalled"
    expression  = "IF(FILL(incoming, 0) > 0 AND FILL(commits, 0) == 0, 1, 0)"
    label       = "records arriving, nothing committed"
    return_data = true
  }

  metric_query {
    id = "incoming"
    metric {
      namespace   = "AWS/Kinesis"
      metric_name = "IncomingRecords"
      dimensions  = { StreamName = var.stream_name }
      stat        = "Sum"
      period      = 60
    }
  }

  metric_query {
    id = "commits"
    metric {
      namespace   = local.ns
      metric_name = "BatchesCommitted"
      stat        = "Sum"
      period      = 60
    }
  }

  depends_on = [aws_cloudwatch_log_metric_filter.writer]
}

# ------------------------------------------------------------------ compactor task stopped with an error

resource "aws_cloudwatch_event_rule" "compactor_failed" {
  name        = "${var.name_prefix}-compactor-task-failed"
  description = "A compactor task stopped with a non-zero exit code or failed to start."
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn        = [var.cluster_arn]
      lastStatus        = ["STOPPED"]
      taskDefinitionArn = [for arn in var.compactor_task_definition_arns_without_revision : { prefix = "${arn}:" }]
      # A container that exited non-zero (incl. OOM kill, 137), or a task that never started
      # (image pull, ENI, secrets: no exit code at all).
      "$or" = [
        { containers = { exitCode = [{ "anything-but" = 0 }] } },
        { stopCode = ["TaskFailedToStart"] },
      ]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "compactor_failed" {
  rule = aws_cloudwatch_event_rule.compactor_failed.name
  arn  = aws_sns_topic.alarms.arn

  input_transformer {
    input_paths = {
      task     = "$.detail.taskArn"
      reason   = "$.detail.stoppedReason"
      stopCode = "$.detail.stopCode"
    }
    input_template = "\"${var.name_prefix}: compactor task <task> stopped with an error (<stopCode>: <reason>).\""
  }
}
