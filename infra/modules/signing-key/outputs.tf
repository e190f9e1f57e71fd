output "key_id" {
  description = "Id of the key Terraform created (the set's first current key)."
  value       = aws_kms_key.this.key_id
}

output "key_arn" {
  description = "ARN of the key Terraform created."
  value       = aws_kms_key.this.arn
}

output "alias_name" {
  description = "The set's current alias, alias/NAME: what signers pass as --key."
  value       = aws_kms_alias.this.name
}

output "alias_arn" {
  description = "ARN of the current alias."
  value       = aws_kms_alias.this.arn
}

output "public_key_pem" {
  description = "PEM public key of the key Terraform created. After a rotation, publish the JWKS from `kms-jwt jwks --key alias/NAME` instead."
  value       = data.aws_kms_public_key.this.public_key_pem
}

output "signer_policy_json" {
  description = "IAM policy for signers: kms:Sign on whichever key alias/NAME names, and the public keys of the whole set."
  value       = data.aws_iam_policy_document.signer.json
}

output "rotator_policy_json" {
  description = "IAM policy for the principal that runs `kms-jwt keyset rotate`: create tagged keys, manage the set's keys and aliases."
  value       = data.aws_iam_policy_document.rotator.json
}
