# The access model of a kms-jwt key set. Terraform owns who may do what; `kms-jwt keyset`
# owns the keys and aliases. Every grant is attribute-based on the tag kms-jwt:key-set, so it
# covers each key the CLI creates or will create, and nothing else; no plan or destroy ever
# touches a key or an alias.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  partition   = data.aws_partition.current.partition
  account_id  = data.aws_caller_identity.current.account_id
  alias_name  = "alias/${var.name}"
  policy_name = replace(var.name, "/", "-")

  # The KMS signing algorithm of each spec's default JWT algorithm (RS256, ES256/384/512, ES256K,
  # EdDSA, ML-DSA-44/65/87).
  default_signing_algorithm = {
    RSA_2048              = "RSASSA_PKCS1_V1_5_SHA_256"
    RSA_3072              = "RSASSA_PKCS1_V1_5_SHA_256"
    RSA_4096              = "RSASSA_PKCS1_V1_5_SHA_256"
    ECC_NIST_P256         = "ECDSA_SHA_256"
    ECC_NIST_P384         = "ECDSA_SHA_384"
    ECC_NIST_P521         = "ECDSA_SHA_512"
    ECC_SECG_P256K1       = "ECDSA_SHA_256"
    ECC_NIST_EDWARDS25519 = "ED25519_SHA_512"
    ML_DSA_44             = "ML_DSA_SHAKE_256"
    ML_DSA_65             = "ML_DSA_SHAKE_256"
    ML_DSA_87             = "ML_DSA_SHAKE_256"
  }
  signing_algorithms = var.signing_algorithms != null ? var.signing_algorithms : [local.default_signing_algorithm[var.key_spec]]

  # kms-jwt sends KMS the digest for RSA and ECDSA, and the message itself (RAW) for Ed25519
  # and ML-DSA, which hash as part of signing: the signer may use exactly those message types.
  message_types = sort(distinct([for a in local.signing_algorithms : contains(["ED25519_SHA_512", "ML_DSA_SHAKE_256"], a) ? "RAW" : "DIGEST"]))

  # Tags kms_jwt::keyset writes when it creates a key, and the two it adds later (the kid
  # once the public key is known, the demotion time when the key stops being current).
  creation_tag_keys = concat(["kms-jwt:key-set", "kms-jwt:created-at", "kms-jwt:max-token-ttl"], var.extra_tag_keys)
  later_tag_keys    = ["kms-jwt:kid", "kms-jwt:demoted-at"]

  # The set's aliases, its lock, and the aliases that break a stale lock (alias/NAME/lock-<time>).
  alias_arns = [
    for suffix in ["", "/previous", "/next", "/lock", "/lock-*"] :
    "arn:${local.partition}:kms:*:${local.account_id}:${local.alias_name}${suffix}"
  ]

  # Each policy is a JSON template with plain ${...} values, so that the same file is linted
  # offline (scripts/iam-lint.sh) and checked against the library (terraform_parity.rs).
  template_values = {
    partition                = local.partition
    account_id               = local.account_id
    name                     = var.name
    key_spec                 = var.key_spec
    signing_algorithms       = jsonencode(local.signing_algorithms)
    message_types            = jsonencode(local.message_types)
    creation_tag_keys        = jsonencode(local.creation_tag_keys)
    later_tag_keys           = jsonencode(local.later_tag_keys)
    alias_arns               = jsonencode(local.alias_arns)
    min_deletion_window_days = var.min_deletion_window_days
    multi_region             = length(var.replica_regions) > 0 ? "true" : "false"
    replica_regions          = jsonencode(var.replica_regions)
  }

  # A multi-Region set's rotators also replicate the set's keys, create the replicas, and let KMS
  # create its service-linked role for multi-Region keys: rotator-replicas.json.tftpl, merged in
  # only when there are replica regions, so that a single-Region policy has no statement about
  # replicas (and no condition on an empty list of regions).
  rotator_templates = length(var.replica_regions) > 0 ? ["rotator", "rotator-replicas"] : ["rotator"]
  rotator_documents = [
    for template in local.rotator_templates :
    jsondecode(templatefile("${path.module}/policies/${template}.json.tftpl", local.template_values))
  ]

  policies = {
    signer = templatefile("${path.module}/policies/signer.json.tftpl", local.template_values)
    rotator = jsonencode({
      Version   = local.rotator_documents[0].Version
      Statement = flatten([for document in local.rotator_documents : document.Statement])
    })
    admin = templatefile("${path.module}/policies/admin.json.tftpl", local.template_values)
  }

  attachments = merge(
    { for r in var.signer_role_names : "signer/${r}" => { role = r, policy = "signer" } },
    { for r in var.rotator_role_names : "rotator/${r}" => { role = r, policy = "rotator" } },
    { for r in var.admin_role_names : "admin/${r}" => { role = r, policy = "admin" } },
  )
}

resource "aws_iam_policy" "this" {
  for_each = local.policies

  name        = "${var.policy_name_prefix}${local.policy_name}-${each.key}"
  path        = var.policy_path
  description = "kms-jwt key set ${var.name}: ${each.key}"
  policy      = each.value
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = local.attachments

  role       = each.value.role
  policy_arn = aws_iam_policy.this[each.value.policy].arn
}

# Says, when Terraform destroys the module, what it leaves: the keys and aliases belong to
# the CLI, and deleting them is a decision (tokens they signed stop verifying), not a side effect.
resource "terraform_data" "this" {
  input = var.name

  provisioner "local-exec" {
    when    = destroy
    command = "echo 'kms-jwt: Terraform removed the IAM policies of key set ${self.input}; its KMS keys and aliases are left as they are (list them: kms-jwt keyset status --key ${self.input})'"
  }
}
