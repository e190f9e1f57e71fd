output "alias_name" {
  description = "The key set's current alias."
  value       = module.signing_key.alias_name
}

output "key_arn" {
  description = "ARN of the key Terraform created."
  value       = module.signing_key.key_arn
}

output "public_key_pem" {
  description = "The key's PEM public key."
  value       = module.signing_key.public_key_pem
}

output "signer_policy_json" {
  description = "IAM policy for signers."
  value       = module.signing_key.signer_policy_json
}
