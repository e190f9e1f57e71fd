variable "name" {
  description = "Name of the deployment: the functions are NAME-issuer and NAME-rotate, the bucket NAME-keys-ACCOUNT."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,40}$", var.name))
    error_message = "The name must be 1-41 lower-case letters, digits or '-', starting with a letter or digit (it becomes part of a bucket name)."
  }
}

variable "key_set" {
  description = "The key set the issuer signs with and the schedule rotates, as `kms-jwt keyset provision --key NAME` made it (the signing-key module's name)."
  type        = string
}

variable "signer_policy_arn" {
  description = "The signing-key module's signer_policy_arn: the issuer function's only KMS access."
  type        = string
}

variable "rotator_policy_arn" {
  description = "The signing-key module's rotator_policy_arn: the rotation function's KMS access (a role of its own, never the issuer's)."
  type        = string
}

variable "lambda_zip" {
  description = "Path of the function's zip, as `cargo xtask lambda-build` writes it (target/lambda/kms-jwt-lambda/bootstrap.zip: provided.al2023, arm64)."
  type        = string
}

variable "token_policy" {
  description = "The token policy, TOML, as `kms-jwt serve --token-policy` reads it (docs/ISSUER.md): who may get tokens for which audiences, for how long, with which claims."
  type        = string
}

variable "invoker_principals" {
  description = "IAM principal ARNs (roles, users, or account roots) allowed to call the token URL (lambda:InvokeFunctionUrl, IAM auth). Together with invoker_org_id, at least one must be given: the URL is never open to everyone."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.invoker_principals : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/.+|user/.+)$", p))])
    error_message = "Each invoker principal must be an IAM role, user or account-root ARN."
  }
}

variable "invoker_org_id" {
  description = "An AWS Organizations id (o-...): every principal of the organization may call the token URL (aws:PrincipalOrgID). The token policy still decides who gets what."
  type        = string
  default     = null

  validation {
    condition     = var.invoker_org_id == null || can(regex("^o-[a-z0-9]{10,32}$", coalesce(var.invoker_org_id, "o-")))
    error_message = "The invoker_org_id must be an organization id, o- followed by 10-32 letters or digits."
  }
}

variable "fallback_regions" {
  description = "Regions of a multi-Region key set to sign in when the function's own region cannot (FailoverSigner); empty for a single-Region set."
  type        = list(string)
  default     = []
}

variable "rotation_schedule" {
  description = "When the rotation function runs (EventBridge Scheduler expression). Each run rotates only if the current key is older than rotate_if_older_than, then publishes."
  type        = string
  default     = "rate(1 day)"
}

variable "rotate_if_older_than" {
  description = "The key age at which a scheduled run rotates (`kms-jwt keyset rotate --if-older-than`), such as 90d."
  type        = string
  default     = "90d"
}

variable "documents_max_age" {
  description = "Cache-Control max-age, in seconds, of the published JWKS and discovery documents (with a little jitter per publication)."
  type        = number
  default     = 300

  validation {
    condition     = var.documents_max_age >= 60 && var.documents_max_age <= 86400
    error_message = "The documents_max_age must be between 60 and 86400 seconds."
  }
}

variable "log_retention_days" {
  description = "How long the functions' logs (audit lines included) are kept."
  type        = number
  default     = 365
}

variable "memory_size" {
  description = "Memory of the issuer function, in MB (CPU grows with it)."
  type        = number
  default     = 256
}

variable "reserved_concurrency" {
  description = "The most invocations of the issuer at once: a bound on KMS Sign calls and cost whatever the callers do."
  type        = number
  default     = 50
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
