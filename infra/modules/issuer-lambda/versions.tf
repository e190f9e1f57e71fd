terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_lambda_permission's invoked_via_function_url (function URLs since October 2025).
      version = ">= 6.20"
    }
  }
}
