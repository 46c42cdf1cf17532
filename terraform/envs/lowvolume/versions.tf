terraform {
  required_version = ">= 1.10" # backend "s3" use_lockfile (backend.hcl.example)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # Partial configuration: terraform init -backend-config=backend.hcl (see backend.hcl.example).
  backend "s3" {}
}
