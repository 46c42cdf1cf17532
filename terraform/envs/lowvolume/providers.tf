provider "aws" {
  region = var.aws_region

  # Refuse to run against another account than the environment's (null = no check).
  allowed_account_ids = var.aws_account_id == null ? null : [var.aws_account_id]

  default_tags {
    tags = {
      project     = "events-lake"
      environment = "lowvolume"
      managed-by  = "terraform"
    }
  }
}
