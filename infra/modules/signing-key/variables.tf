variable "name" {
  description = "Key set name, as given to `kms-jwt keyset provision --key NAME`: its keys carry the tag kms-jwt:key-set=NAME and its current key is alias/NAME."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9/_-]{1,240}$", var.name)) && !startswith(var.name, "aws/") && !endswith(var.name, "/previous") && !endswith(var.name, "/next") && !endswith(var.name, "/lock") && !strcontains(var.name, "/lock-")
    error_message = "The name must be 1-240 letters, digits, '/', '_' or '-', must not start with 'aws/', must not end in '/previous', '/next' or '/lock', and must not contain '/lock-' (kms-jwt keyset's own aliases)."
  }
}

variable "key_spec" {
  description = "KMS key spec of the set's keys: rotators may create keys of this spec only. RSA_2048 signs RS256 (the default); ECC specs sign the curve's ES* algorithm, ECC_NIST_EDWARDS25519 EdDSA, ML_DSA_* the ML-DSA of the parameter set. To move a set to another spec, change it here, apply, then `kms-jwt keyset rotate --key-spec`."
  type        = string
  default     = "RSA_2048"

  validation {
    condition     = contains(["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87"], var.key_spec)
    error_message = "The key_spec must be an asymmetric signing spec: RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, ML_DSA_44, ML_DSA_65 or ML_DSA_87."
  }
}

variable "signing_algorithms" {
  description = "KMS signing algorithms signers may use (the kms:SigningAlgorithm condition; kms:MessageType follows: DIGEST for RSA and ECDSA, RAW for Ed25519 and ML-DSA). Null means the key spec's default: RSASSA_PKCS1_V1_5_SHA_256 for RSA (RS256), the curve's ECDSA_SHA_* for ECC, ED25519_SHA_512 for Ed25519, ML_DSA_SHAKE_256 for ML-DSA."
  type        = list(string)
  default     = null

  validation {
    condition     = var.signing_algorithms == null || alltrue([for a in coalesce(var.signing_algorithms, []) : contains(["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512", "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "ED25519_SHA_512", "ML_DSA_SHAKE_256"], a)])
    error_message = "Each signing algorithm must be a KMS signing algorithm kms-jwt uses, such as RSASSA_PKCS1_V1_5_SHA_256, ECDSA_SHA_256 or ED25519_SHA_512 (not ED25519_PH_SHA_512: Ed25519ph is not JOSE's EdDSA)."
  }
}

variable "min_deletion_window_days" {
  description = "Shortest waiting period, in days, that rotators may set when they schedule a retired key's deletion (kms:ScheduleKeyDeletionPendingWindowInDays). `kms-jwt keyset rotate --pending-window-days` defaults to 30; a key that lost a provisioning race is scheduled with 7."
  type        = number
  default     = 7

  validation {
    condition     = var.min_deletion_window_days >= 7 && var.min_deletion_window_days <= 30
    error_message = "The min_deletion_window_days must be between 7 and 30."
  }
}

variable "replica_regions" {
  description = "A multi-Region set's replica regions (`kms-jwt keyset provision --regions PRIMARY,R2,...` without the primary, which is the provider's region). Empty: rotators may create single-Region keys only, and their policy says nothing of replicas; otherwise multi-Region keys, replicas of the set's keys in these regions only, and iam:CreateServiceLinkedRole for KMS's role AWSServiceRoleForKeyManagementServiceMultiRegionKeys only. The keys and replicas are the CLI's, as in one region."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.replica_regions : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", r))])
    error_message = "Each replica region must be an AWS region name, such as eu-central-1."
  }
}

variable "extra_tag_keys" {
  description = "Tag keys, besides kms-jwt:*, that rotators may put on the keys they create (`kms-jwt keyset provision --tag`). Tags can grant access (ABAC): keep this list short."
  type        = list(string)
  default     = []
}

variable "signer_role_names" {
  description = "IAM roles that sign tokens: kms:Sign (DIGEST, limited to signing_algorithms) and the public keys and tags of every key tagged with the set."
  type        = list(string)
  default     = []
}

variable "rotator_role_names" {
  description = "IAM roles that run `kms-jwt keyset provision` and `kms-jwt keyset rotate`: create the set's keys (its tags, key spec and usage only), tag them, move the set's aliases and schedule retired keys' deletion."
  type        = list(string)
  default     = []
}

variable "admin_role_names" {
  description = "IAM roles that administer the set's keys: describe, read policies and grants, enable, disable, cancel deletion, revoke grants. Not Sign, PutKeyPolicy, CreateGrant, tags or aliases; see the README for who can still grant Sign."
  type        = list(string)
  default     = []
}

variable "policy_name_prefix" {
  description = "Prefix of the IAM policy names (the policies are PREFIX<name>-signer, -rotator and -admin, with '/' in the name replaced by '-')."
  type        = string
  default     = "kms-jwt-"
}

variable "policy_path" {
  description = "IAM path of the policies."
  type        = string
  default     = "/"
}

variable "tags" {
  description = "Tags for the IAM policies (the KMS keys are tagged by `kms-jwt keyset provision`)."
  type        = map(string)
  default     = {}
}
