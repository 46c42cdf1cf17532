# Offline unit tests (mock provider): run with `terraform test` in modules/iam.
# What these policies actually allow and deny is exercised against moto with IAM enforcement
# by integration-tests/test_terraform_iam.py.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "111122223333" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  name_prefix               = "events-lake-test"
  kms_key_arn               = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
  stream_arn                = "arn:aws:kinesis:eu-west-1:111122223333:stream/events-lake-test-events"
  lake_bucket_arn           = "arn:aws:s3:::events-lake-test-lake-111122223333"
  events_table_key_prefix   = "lake/events"
  rejected_table_key_prefix = "lake/events_rejected"
  lock_table_arn            = "arn:aws:dynamodb:eu-west-1:111122223333:table/events-lake-test-delta-lock"
  lease_table_arn           = "arn:aws:dynamodb:eu-west-1:111122223333:table/events-lake-test-shard-leases"
  metrics_namespace         = "EventsLake/test"
  glue_database_name        = "events_lake_test"
  athena_workgroup_name     = "events-lake-test"
  athena_results_bucket_arn = "arn:aws:s3:::events-lake-test-athena-111122223333"
}

run "least_privilege_task_policies" {
  # Every data statement names resources; "*" only for PutMetricData (no resource-level permissions).
  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.writer.policy, aws_iam_role_policy.compactor.policy, aws_iam_policy.producer.policy, aws_iam_policy.analyst[0].policy] : [
        for s in jsondecode(p).Statement :
        s.Resource != "*" || s.Action == ["cloudwatch:PutMetricData"]
      ]
    ]))
    error_message = "Only PutMetricData may use Resource \"*\"."
  }
  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.writer.policy, aws_iam_role_policy.compactor.policy] : [
        for s in jsondecode(p).Statement :
        s.Condition.StringEquals["cloudwatch:namespace"] == "EventsLake/test" if s.Action == ["cloudwatch:PutMetricData"]
      ]
    ]))
    error_message = "PutMetricData must be limited to the environment namespace."
  }
  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.writer.policy, aws_iam_role_policy.compactor.policy, aws_iam_policy.producer.policy, aws_iam_policy.analyst[0].policy] : [
        for s in jsondecode(p).Statement : [for a in s.Action : !strcontains(a, "*")]
      ]
    ]))
    error_message = "No wildcard actions."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.writer.policy).Statement : s.Resource if s.Sid == "ReadOwnStream"
    ]) == [var.stream_arn]
    error_message = "Kinesis access is limited to the stream."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.writer.policy).Statement : s.Resource if s.Sid == "ReadWriteTableObjects"
      ]) == [
      "arn:aws:s3:::events-lake-test-lake-111122223333/lake/events/*",
      "arn:aws:s3:::events-lake-test-lake-111122223333/lake/events_rejected/*",
    ]
    error_message = "S3 object access is limited to the table prefixes."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.writer.policy).Statement : s.Resource if s.Sid == "LockAndLeaseItems"
    ]) == [var.lock_table_arn, var.lease_table_arn]
    error_message = "DynamoDB access is limited to the lock and lease tables."
  }
  # Issue 13, defect 1: the tables are Terraform's; the writer must start without these.
  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.writer.policy, aws_iam_role_policy.compactor.policy] : [
        for s in jsondecode(p).Statement : [
          for a in s.Action : !contains(["dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTable", "kinesis:DeleteStream", "s3:DeleteBucket"], a)
        ]
      ]
    ]))
    error_message = "Task roles must not create, change or delete tables, streams or buckets."
  }
}

# Issue 13, defect 5: the compactor's IAM covered only the events prefix.
run "compactor_covers_both_tables_and_nothing_else" {
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.compactor.policy).Statement : s.Resource if s.Sid == "ReadWriteTableObjects"
      ]) == [
      "arn:aws:s3:::events-lake-test-lake-111122223333/lake/events/*",
      "arn:aws:s3:::events-lake-test-lake-111122223333/lake/events_rejected/*",
    ]
    error_message = "The compactor maintains both tables."
  }
  assert {
    condition = toset(one([
      for s in jsondecode(aws_iam_role_policy.compactor.policy).Statement : s.Condition.StringLike["s3:prefix"] if s.Sid == "ListTablePrefixes"
    ])) == toset(["lake/events", "lake/events/*", "lake/events_rejected", "lake/events_rejected/*"])
    error_message = "The compactor lists both tables."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.compactor.policy).Statement : s.Resource if s.Sid == "CommitLockItems"
    ]) == [var.lock_table_arn]
    error_message = "The compactor only touches the lock table."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.compactor.policy).Statement :
      !strcontains(jsonencode(s.Resource), "kinesis") && !strcontains(jsonencode(s.Resource), "shard-leases")
    ])
    error_message = "The compactor has no access to the stream or the lease table."
  }
}

run "producer_puts_to_the_stream_only" {
  assert {
    condition = one([
      for s in jsondecode(aws_iam_policy.producer.policy).Statement : s.Resource if contains(s.Action, "kinesis:PutRecords")
    ]) == [var.stream_arn]
    error_message = "Producers put to this stream only."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_policy.producer.policy).Statement : !contains(s.Action, "kinesis:GetRecords")
    ])
    error_message = "Producers do not read the stream."
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_policy.producer.policy).Statement :
      try(s.Action == ["kms:GenerateDataKey"] && s.Resource == [var.kms_key_arn] && s.Condition.StringEquals["kms:ViaService"] == "kinesis.eu-west-1.amazonaws.com", false)
    ])
    error_message = "Producers need the stream's key, through Kinesis only."
  }
}

run "analyst_reads_only" {
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_policy.analyst[0].policy).Statement : [
        for a in s.Action : !contains(["s3:PutObject", "s3:DeleteObject"], a) if s.Sid != "QueryResults"
      ]
    ]))
    error_message = "Analysts write only query results."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_policy.analyst[0].policy).Statement : s.Resource if s.Sid == "QueryResults"
    ]) == ["arn:aws:s3:::events-lake-test-athena-111122223333/results/*"]
    error_message = "Analysts write results only under the workgroup's results prefix."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_policy.analyst[0].policy).Statement : s.Resource if s.Sid == "QueryInOwnWorkgroup"
    ]) == ["arn:aws:athena:eu-west-1:111122223333:workgroup/events-lake-test"]
    error_message = "Analysts query in the stack's workgroup only (it enforces encryption and the scan limit)."
  }
}

run "no_analyst_policy_without_athena" {
  variables {
    athena_workgroup_name     = null
    athena_results_bucket_arn = null
  }
  assert {
    condition     = length(aws_iam_policy.analyst) == 0 && output.analyst_policy_arn == null
    error_message = "No Athena, no analyst policy."
  }
}
