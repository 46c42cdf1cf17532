# lowvolume settings that are not sizing (sizing lives in main.tf). Replace the placeholders.
aws_region     = "eu-west-1"
aws_account_id = null # e.g. "111122223333"

vpc_id     = "vpc-REPLACE"
subnet_ids = ["subnet-REPLACE-public-a", "subnet-REPLACE-public-b"] # public subnets (internet gateway route)

# Image built from the repository's Dockerfile and pushed to output ecr_repository_url.
image_tag = "REPLACE-git-sha"

alarm_email_addresses = []
