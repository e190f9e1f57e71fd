variable "name" {
  description = "Key set name: the key is published as alias/NAME, and `kms-jwt keyset rotate` adds alias/NAME/previous and alias/NAME/next."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9/_-]{1,240}$", var.name)) && !startswith(var.name, "aws/") && !endswith(var.name, "/previous") && !endswith(var.name, "/next")
    error_message = "The name must be 1-240 letters, digits, '/', '_' or '-', must not start with 'aws/', and must not end in '/previous' or '/next'."
  }
}

variable "key_spec" {
  description = "KMS key spec of the signing key. RSA_2048 signs RS256 (the default); ECC specs sign the curve's ES* algorithm."
  type        = string
  default     = "RSA_2048"

  validation {
    condition     = contains(["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"], var.key_spec)
    error_message = "The key_spec must be an asymmetric signing spec: RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521 or ECC_SECG_P256K1."
  }
}

variable "signing_algorithms" {
  description = "KMS signing algorithms signers may use (the kms:SigningAlgorithm condition). Null means the key spec's default: RSASSA_PKCS1_V1_5_SHA_256 for RSA (RS256), the curve's ECDSA_SHA_* for ECC."
  type        = list(string)
  default     = null

  validation {
    condition     = var.signing_algorithms == null || alltrue([for a in coalesce(var.signing_algorithms, []) : contains(["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512", "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512"], a)])
    error_message = "Each signing algorithm must be a KMS asymmetric signing algorithm, such as RSASSA_PKCS1_V1_5_SHA_256 or ECDSA_SHA_256."
  }
}

variable "max_token_ttl" {
  description = "Longest lifetime of a token the set's keys sign (tag kms-jwt:max-token-ttl, as `kms-jwt keyset provision --max-token-ttl` writes it): the signer refuses longer tokens, and rotation's default overlap is this plus the JWKS cache age (5m) plus clock skew (60s)."
  type        = string
  default     = "1h"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h|d)$", var.max_token_ttl))
    error_message = "The max_token_ttl must be a whole number of seconds, minutes, hours or days, such as 15m or 1h."
  }
}

variable "description" {
  description = "Description of the KMS key."
  type        = string
  default     = "kms-jwt signing key"
}

variable "deletion_window_in_days" {
  description = "Waiting period, in days, before KMS deletes the key once its deletion is scheduled (by `terraform destroy` or by a rotation retiring it)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "The deletion_window_in_days must be between 7 and 30."
  }
}

variable "admin_principals" {
  description = "IAM principal ARNs that administer the key (policy, tags, deletion) but cannot sign with it."
  type        = list(string)
  default     = []
}

variable "signer_principals" {
  description = "IAM principal ARNs that sign tokens: kms:Sign (limited to signing_algorithms), kms:GetPublicKey, kms:DescribeKey and kms:ListResourceTags (the lifetime policy)."
  type        = list(string)
  default     = []
}

variable "rotator_principals" {
  description = "IAM principal ARNs that run `kms-jwt keyset rotate`: describe, read tags, tag, move the set's aliases and schedule the retired key's deletion. They also need kms:CreateKey and kms:ListAliases in IAM (see rotator_policy_json)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Extra tags for the key. The kms-jwt:key-set and kms-jwt:created-at tags are always set, as `kms-jwt keyset provision` sets them."
  type        = map(string)
  default     = {}
}
