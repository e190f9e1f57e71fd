# An example root: a key set's access model against LocalStack. Terraform makes three roles and
# their policies; `kms-jwt keyset provision` makes the keys and aliases (see infra/README.md).
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

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

# One role per kind of principal, assumable from the account: in real use, the token issuer's
# task role, the scheduled rotation's role and the security team's role.
resource "aws_iam_role" "this" {
  for_each = toset(["signer", "rotator", "admin"])

  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

module "signing_key" {
  source = "../../modules/signing-key"

  name               = var.name
  replica_regions    = var.replica_regions
  signer_role_names  = [aws_iam_role.this["signer"].name]
  rotator_role_names = [aws_iam_role.this["rotator"].name]
  admin_role_names   = [aws_iam_role.this["admin"].name]
  tags = {
    environment = "localstack"
  }
}
