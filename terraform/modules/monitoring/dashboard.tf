locals {
  widgets = concat([
    {
      title = "Ingest rate (events/min)"
      metrics = [
        [local.ns, "EventsWritten", { stat = "Sum", label = "written to Delta" }],
        ["AWS/Kinesis", "IncomingRecords", "StreamName", var.stream_name, { stat = "Sum", label = "into Kinesis" }],
        [local.ns, "DuplicatesDropped", { stat = "Sum", label = "duplicates dropped" }],
      ]
      period = 60
    },
    {
      title = "Kinesis lag: iterator age (ms)"
      metrics = [
        ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", var.stream_name, { stat = "Maximum" }],
      ]
      period = 60
      annotations = {
        horizontal = [{ label = "alarm", value = local.iterator_age_threshold_ms }]
      }
    },
    {
      title = "Commit latency (ms)"
      metrics = [
        [local.ns, "CommitLatencyMs", { stat = "Average", label = "avg" }],
        [local.ns, "CommitLatencyMs", { stat = "p99", label = "p99" }],
        [local.ns, "BatchesCommitted", { stat = "Sum", label = "commits", yAxis = "right" }],
      ]
      period = 300
    },
    {
      title = "Freshness: Kinesis arrival to visible in the table (ms)"
      metrics = [
        [local.ns, "FreshnessMs", { stat = "p50", label = "p50" }],
        [local.ns, "FreshnessMs", { stat = "p99", label = "p99" }],
      ]
      period = 300
      annotations = {
        horizontal = [{ label = "alarm", value = local.freshness_threshold_ms }]
      }
    },
    {
      title = "Rejected records and writer errors"
      metrics = [
        [local.ns, "EventsRejected", { stat = "Sum" }],
        [local.ns, "WriterErrors", { stat = "Sum" }],
      ]
      period = 300
    },
    {
      title = "Compactor runs"
      metrics = [
        [local.ns, "CompactorRunsSucceeded", { stat = "Sum", label = "succeeded" }],
        [local.ns, "CompactorRunsFailed", { stat = "Sum", label = "failed" }],
      ]
      period = 3600
    },
    ], local.writer_scheduled ? [] : [
    # Service mode: the service's tasks (a scheduled writer has no service).
    {
      title = "Writer tasks"
      metrics = [
        ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", var.cluster_name, "ServiceName", var.writer_service_name, { stat = "Minimum", label = "running" }],
        ["ECS/ContainerInsights", "CpuUtilized", "ClusterName", var.cluster_name, "ServiceName", var.writer_service_name, { stat = "Average", yAxis = "right" }],
        ["ECS/ContainerInsights", "MemoryUtilized", "ClusterName", var.cluster_name, "ServiceName", var.writer_service_name, { stat = "Average", yAxis = "right" }],
      ]
      period = 60
      annotations = {
        horizontal = [{ label = "desired", value = var.writer_desired_count }]
      }
    },
    ], [
    {
      title = "Kinesis throttling"
      metrics = [
        ["AWS/Kinesis", "WriteProvisionedThroughputExceeded", "StreamName", var.stream_name, { stat = "Sum" }],
        ["AWS/Kinesis", "ReadProvisionedThroughputExceeded", "StreamName", var.stream_name, { stat = "Sum" }],
      ]
      period = 300
    },
  ])
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({
    widgets = [
      for i, w in local.widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = merge({
          title   = w.title
          view    = "timeSeries"
          region  = local.region
          metrics = w.metrics
          period  = w.period
        }, try({ annotations = w.annotations }, {}))
      }
    ]
  })
}
