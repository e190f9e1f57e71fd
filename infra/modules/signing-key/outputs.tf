output "alias_name" {
  description = "The set's current alias, alias/NAME: what signers pass as --key once `kms-jwt keyset provision --key NAME` has created it."
  value       = local.alias_name
}

output "key_set_tag" {
  description = "The tag every key of the set carries and every grant is conditioned on."
  value       = { "kms-jwt:key-set" = var.name }
}

output "signer_policy_arn" {
  description = "ARN of the signers' IAM policy."
  value       = aws_iam_policy.this["signer"].arn
}

output "rotator_policy_arn" {
  description = "ARN of the rotators' IAM policy."
  value       = aws_iam_policy.this["rotator"].arn
}

output "admin_policy_arn" {
  description = "ARN of the administrators' IAM policy."
  value       = aws_iam_policy.this["admin"].arn
}

output "signer_policy_json" {
  description = "The signers' policy document, to attach elsewhere (a permission set, another account's role cannot use it: see the README)."
  value       = local.policies["signer"]
}

output "rotator_policy_json" {
  description = "The rotators' policy document."
  value       = local.policies["rotator"]
}

output "admin_policy_json" {
  description = "The administrators' policy document."
  value       = local.policies["admin"]
}
