data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  alias_name = "alias/${var.name}"
  # The three aliases of a key set, as kms_jwt::keyset names them.
  set_aliases = [local.alias_name, "${local.alias_name}/previous", "${local.alias_name}/next"]

  default_signing_algorithm = {
    RSA_2048        = "RSASSA_PKCS1_V1_5_SHA_256"
    RSA_3072        = "RSASSA_PKCS1_V1_5_SHA_256"
    RSA_4096        = "RSASSA_PKCS1_V1_5_SHA_256"
    ECC_NIST_P256   = "ECDSA_SHA_256"
    ECC_NIST_P384   = "ECDSA_SHA_384"
    ECC_NIST_P521   = "ECDSA_SHA_512"
    ECC_SECG_P256K1 = "ECDSA_SHA_256"
  }
  signing_algorithms = var.signing_algorithms != null ? var.signing_algorithms : [local.default_signing_algorithm[var.key_spec]]

  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  key_arns     = "arn:${data.aws_partition.current.partition}:kms:*:${data.aws_caller_identity.current.account_id}:key/*"
  # The set's aliases, its lock, and the aliases that break a stale lock (alias/NAME/lock-<time>).
  alias_arns = [for a in concat(local.set_aliases, ["${local.alias_name}/lock", "${local.alias_name}/lock-*"]) : "arn:${data.aws_partition.current.partition}:kms:*:${data.aws_caller_identity.current.account_id}:${a}"]

  tags = merge(var.tags, {
    "kms-jwt:key-set"       = var.name
    "kms-jwt:created-at"    = time_static.created.rfc3339
    "kms-jwt:max-token-ttl" = var.max_token_ttl
  })
}

# The creation time is fixed at the first apply, as the provision command's tag is.
resource "time_static" "created" {}

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:The account root keeps full access so that IAM policies can grant access; this is the KMS default key policy statement and keeps the key recoverable.
  # checkov:skip=CKV_AWS_111:The account root statement must allow key management without constraints, as in the KMS default key policy.
  # checkov:skip=CKV_AWS_356:A key policy's resource is always the key itself ("*" means this key).
  statement {
    sid       = "AccountRoot"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  dynamic "statement" {
    for_each = length(var.admin_principals) > 0 ? [1] : []
    content {
      sid = "Administer"
      actions = [
        "kms:Describe*", "kms:Get*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Enable*", "kms:Disable*",
        "kms:Revoke*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
      ]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.admin_principals
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.signer_principals) > 0 ? [1] : []
    content {
      sid       = "Sign"
      actions   = ["kms:Sign"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.signer_principals
      }
      condition {
        test     = "StringEquals"
        variable = "kms:SigningAlgorithm"
        values   = local.signing_algorithms
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.signer_principals) > 0 ? [1] : []
    content {
      sid       = "ReadPublicKey"
      # ListResourceTags: the signer reads the set's lifetime policy (kms-jwt:max-token-ttl).
      actions   = ["kms:GetPublicKey", "kms:DescribeKey", "kms:ListResourceTags"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.signer_principals
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.rotator_principals) > 0 ? [1] : []
    content {
      sid = "Rotate"
      # Exactly the calls kms_jwt::keyset makes on an existing key of the set.
      actions = [
        "kms:DescribeKey", "kms:GetPublicKey", "kms:ListResourceTags", "kms:TagResource",
        "kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias", "kms:ScheduleKeyDeletion",
      ]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.rotator_principals
      }
    }
  }
}

resource "aws_kms_key" "this" {
  description              = var.description
  key_usage                = "SIGN_VERIFY"
  customer_master_key_spec = var.key_spec
  # KMS cannot rotate asymmetric keys; `kms-jwt keyset rotate` rotates through the aliases.
  enable_key_rotation     = false
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = local.alias_name
  target_key_id = aws_kms_key.this.key_id

  lifecycle {
    # `kms-jwt keyset rotate` moves this alias to each new key; Terraform must not move it back.
    ignore_changes = [target_key_id]
  }
}

data "aws_kms_public_key" "this" {
  key_id = aws_kms_key.this.arn
}

data "aws_iam_policy_document" "signer" {
  statement {
    sid       = "SignWithTheCurrentKey"
    actions   = ["kms:Sign"]
    resources = [local.key_arns]
    # Whichever key the alias names after a rotation: no IAM change is needed.
    condition {
      test     = "ForAnyValue:StringEquals"
      variable = "kms:ResourceAliases"
      values   = [local.alias_name]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:SigningAlgorithm"
      values   = local.signing_algorithms
    }
  }

  statement {
    sid = "ReadTheSetsPublicKeys"
    # ListResourceTags: the signer reads the set's lifetime policy (kms-jwt:max-token-ttl).
    actions   = ["kms:GetPublicKey", "kms:DescribeKey", "kms:ListResourceTags"]
    resources = [local.key_arns]
    condition {
      test     = "ForAnyValue:StringEquals"
      variable = "kms:ResourceAliases"
      values   = local.set_aliases
    }
  }
}

data "aws_iam_policy_document" "rotator" {
  statement {
    sid       = "CreateTaggedKeys"
    actions   = ["kms:CreateKey"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kms-jwt:key-set"
      values   = [var.name]
    }
  }

  statement {
    sid       = "ManageTheSetsKeys"
    actions   = ["kms:DescribeKey", "kms:GetPublicKey", "kms:ListResourceTags", "kms:TagResource", "kms:ScheduleKeyDeletion", "kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"]
    resources = [local.key_arns]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/kms-jwt:key-set"
      values   = [var.name]
    }
  }

  statement {
    sid = "FindTheLocksAge"
    # ListAliases names no key (IAM only): rotation reads when alias/NAME/lock was taken, to
    # break a lock left by a run that died.
    actions   = ["kms:ListAliases"]
    resources = ["*"]
  }

  statement {
    sid       = "MoveTheSetsAliases"
    actions   = ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"]
    resources = local.alias_arns
  }
}
