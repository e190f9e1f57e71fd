# An example root: the signing-key module against LocalStack.
#   cargo xtask localstack up        (or the CI service container)
#   terraform init && terraform apply
# tflocal (pip install terraform-local) works too and needs no endpoint settings.

provider "aws" {
  region                      = var.region
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = false

  endpoints {
    kms = var.localstack_endpoint
    sts = var.localstack_endpoint
    iam = var.localstack_endpoint
  }
}

module "signing_key" {
  source = "../../modules/signing-key"

  name                    = var.name
  deletion_window_in_days = 7
  tags = {
    environment = "localstack"
  }
}
