output "alias_name" {
  description = "The key set's current alias, once `kms-jwt keyset provision --key NAME` has run."
  value       = module.signing_key.alias_name
}

output "role_arns" {
  description = "ARNs of the signer, rotator and admin roles."
  value       = { for k, r in aws_iam_role.this : k => r.arn }
}

output "signer_policy_json" {
  description = "IAM policy for signers."
  value       = module.signing_key.signer_policy_json
}
