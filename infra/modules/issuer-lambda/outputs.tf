output "token_url" {
  description = "The function URL: POST /token here, signed with SigV4 for the lambda service (`kms-jwt token --issuer URL --sigv4`)."
  value       = aws_lambda_function_url.this.function_url
}

output "issuer_url" {
  description = "The issuer (the tokens' iss): CloudFront, serving /.well-known/openid-configuration and /.well-known/jwks.json from the bucket."
  value       = local.issuer_url
}

output "bucket" {
  description = "The bucket the rotation function publishes the documents to."
  value       = aws_s3_bucket.this.id
}

output "issuer_function_name" {
  description = "The issuer function."
  value       = aws_lambda_function.this["issuer"].function_name
}

output "rotate_function_name" {
  description = "The rotation function (invoke it once after the first deployment to publish the documents)."
  value       = aws_lambda_function.this["rotate"].function_name
}

output "issuer_role_arn" {
  description = "The issuer function's role (the signer policy)."
  value       = aws_iam_role.this["issuer"].arn
}

output "rotate_role_arn" {
  description = "The rotation function's role (the rotator policy, and writes to the bucket)."
  value       = aws_iam_role.this["rotate"].arn
}
