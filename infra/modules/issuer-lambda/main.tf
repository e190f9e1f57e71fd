# kms-jwt's issuer on AWS Lambda: POST /token behind a function URL with IAM auth (AWS checks
# the caller's SigV4 and hands the function the caller's ARN: no proof, no STS call), the same
# policy and audit lines as `kms-jwt serve`; the JWKS and discovery documents on a private S3
# bucket behind CloudFront; a scheduled function that rotates the set and publishes. The KMS
# access comes from the signing-key module: the issuer signs, the rotation function rotates, and
# neither role can do the other's job.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  bucket     = "${var.name}-keys-${local.account_id}"
  functions  = { issuer = "${var.name}-issuer", rotate = "${var.name}-rotate" }

  issuer_url = "https://${aws_cloudfront_distribution.this.domain_name}"

  # Plain ${name} values, as in the signing-key module: the same templates are linted offline
  # (scripts/iam-lint.sh, with policies/example-values.json).
  template_values = {
    partition  = local.partition
    account_id = local.account_id
    region     = local.region
    bucket     = local.bucket
    issuer     = local.functions.issuer
    rotate     = local.functions.rotate
  }
  function_policies = {
    issuer = templatefile("${path.module}/policies/issuer.json.tftpl", local.template_values)
    rotate = templatefile("${path.module}/policies/rotate.json.tftpl", local.template_values)
  }
  kms_policies = { issuer = var.signer_policy_arn, rotate = var.rotator_policy_arn }

  environment = {
    issuer = {
      KMS_JWT_MODE             = "issuer"
      KMS_JWT_KEY              = var.key_set
      KMS_JWT_ISSUER           = local.issuer_url
      KMS_JWT_TOKEN_POLICY     = var.token_policy
      KMS_JWT_FALLBACK_REGIONS = join(",", var.fallback_regions)
    }
    rotate = {
      KMS_JWT_MODE                 = "rotate"
      KMS_JWT_KEY                  = var.key_set
      KMS_JWT_ISSUER               = local.issuer_url
      KMS_JWT_PUBLISH_TO           = "s3://${local.bucket}"
      KMS_JWT_MAX_AGE              = tostring(var.documents_max_age)
      KMS_JWT_ROTATE_IF_OLDER_THAN = var.rotate_if_older_than
    }
  }
}

# The functions' roles: one each, so that the issuer can never rotate and the rotation never sign.
data "aws_iam_policy_document" "lambda_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.functions

  name               = each.value
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "this" {
  for_each = local.functions

  name   = "${each.value}-logs-and-documents"
  role   = aws_iam_role.this[each.key].id
  policy = local.function_policies[each.key]
}

resource "aws_iam_role_policy_attachment" "kms" {
  for_each = local.functions

  role       = aws_iam_role.this[each.key].name
  policy_arn = local.kms_policies[each.key]
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.functions

  #checkov:skip=CKV_AWS_158:the logs hold audit lines (ARNs, audiences, request ids), no secrets; CloudWatch encrypts them at rest with its own key
  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  for_each = local.functions

  #checkov:skip=CKV_AWS_117:the functions call only KMS, STS-free, and S3 public endpoints; a VPC would add NAT cost and cold-start time for nothing
  #checkov:skip=CKV_AWS_116:invocations are synchronous (function URL) or retried by the schedule's next run; there is nothing for a dead-letter queue to hold
  #checkov:skip=CKV_AWS_173:the environment holds the key set's name, the issuer URL and the token policy: configuration, not secrets
  #checkov:skip=CKV_AWS_272:the zip is built by cargo xtask lambda-build in the deploying pipeline; code signing needs a signing profile this module does not own
  function_name                  = each.value
  role                           = aws_iam_role.this[each.key].arn
  filename                       = var.lambda_zip
  source_code_hash               = filebase64sha256(var.lambda_zip)
  runtime                        = "provided.al2023"
  architectures                  = ["arm64"]
  handler                        = "bootstrap"
  memory_size                    = each.key == "issuer" ? var.memory_size : 256
  timeout                        = each.key == "issuer" ? 10 : 120
  reserved_concurrent_executions = each.key == "issuer" ? var.reserved_concurrency : 1

  environment {
    variables = local.environment[each.key]
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]
  tags       = var.tags
}

# POST /token: AWS checks the caller's SigV4 before the function runs.
resource "aws_lambda_function_url" "this" {
  function_name      = aws_lambda_function.this["issuer"].function_name
  authorization_type = "AWS_IAM"
}

# Function URLs made since October 2025 need lambda:InvokeFunction besides InvokeFunctionUrl.
# It is granted only through the URL (invoked_via_function_url): a direct Invoke carries an
# event its caller wrote, request context and all, and the function takes the caller's identity
# from that context.
locals {
  url_actions = {
    url    = { action = "lambda:InvokeFunctionUrl", auth_type = "AWS_IAM", via_url = null }
    invoke = { action = "lambda:InvokeFunction", auth_type = null, via_url = true }
  }
  principal_grants = merge([
    for p in var.invoker_principals : {
      for kind, grant in local.url_actions : "${kind}/${p}" => merge(grant, { principal = p, kind = kind })
    }
  ]...)
}

resource "aws_lambda_permission" "principal" {
  for_each = local.principal_grants

  statement_id             = "${each.value.kind}-${substr(sha256(each.value.principal), 0, 16)}"
  action                   = each.value.action
  function_name            = aws_lambda_function.this["issuer"].function_name
  principal                = each.value.principal
  function_url_auth_type   = each.value.auth_type
  invoked_via_function_url = each.value.via_url
}

resource "aws_lambda_permission" "organization" {
  for_each = var.invoker_org_id == null ? {} : local.url_actions

  #checkov:skip=CKV_AWS_301:principal * is limited by principal_org_id to the organization's principals, and the URL's IAM auth still requires their SigV4
  statement_id             = "${each.key}-organization"
  action                   = each.value.action
  function_name            = aws_lambda_function.this["issuer"].function_name
  principal                = "*"
  principal_org_id         = var.invoker_org_id
  function_url_auth_type   = each.value.auth_type
  invoked_via_function_url = each.value.via_url
}

# The rotation, on a schedule: rotate if due, then publish the documents.
data "aws_iam_policy_document" "scheduler_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/default/${var.name}-rotate"]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-rotate-schedule"
  assume_role_policy = data.aws_iam_policy_document.scheduler_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-invoke-rotate"
  role   = aws_iam_role.scheduler.id
  policy = templatefile("${path.module}/policies/scheduler.json.tftpl", local.template_values)
}

resource "aws_scheduler_schedule" "this" {
  #checkov:skip=CKV_AWS_297:the schedule's input is {"kms_jwt":"rotate"}; there is nothing for a customer managed key to protect
  name                = "${var.name}-rotate"
  schedule_expression = var.rotation_schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["rotate"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ kms_jwt = "rotate" })

    retry_policy {
      maximum_retry_attempts = 2
    }
  }
}

# The documents: a private bucket, readable only by this distribution.
resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:CloudFront serves every read; its standard logs are where reads are counted, and the bucket's only writer is the rotation role (CloudTrail)
  #checkov:skip=CKV_AWS_144:two public documents that the rotation function rewrites from KMS; replication would copy what one run makes again
  #checkov:skip=CKV2_AWS_62:nothing consumes events of two documents
  #checkov:skip=CKV_AWS_145:public documents (keys anyone may fetch); SSE-S3 encrypts them at rest, and a KMS key would only add a decrypt per CloudFront miss
  bucket = local.bucket
  tags   = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    id     = "old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "CloudFrontReadsTheDocuments"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/.well-known/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.this.arn]
    }
  }
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket     = aws_s3_bucket.this.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_cloudfront_origin_access_control" "this" {
  name                              = "${var.name}-keys"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_response_headers_policy" "this" {
  name = "${var.name}-documents"
  security_headers_config {
    content_type_options {
      override = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    frame_options {
      frame_option = "DENY"
      override     = true
    }
  }
  cors_config {
    access_control_allow_credentials = false
    access_control_allow_headers {
      items = ["*"]
    }
    access_control_allow_methods {
      items = ["GET", "HEAD"]
    }
    access_control_allow_origins {
      items = ["*"]
    }
    origin_override = true
  }
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_68:two small public documents behind a cache; a WAF would cost more than anything it could stop here
  #checkov:skip=CKV2_AWS_47:no WAF (above); the origin is S3, which runs no Log4j
  #checkov:skip=CKV_AWS_86:access logs need a log bucket this module does not own; add logging_config where the account has one
  #checkov:skip=CKV_AWS_310:one origin, S3, which is regional and highly available; a failover origin would be a second copy the rotation must keep
  #checkov:skip=CKV_AWS_374:verifiers anywhere must reach the keys
  #checkov:skip=CKV_AWS_174:the default *.cloudfront.net certificate; a custom domain (aliases, viewer_certificate with an ACM certificate and TLSv1.2_2021) is the deployer's choice
  #checkov:skip=CKV2_AWS_42:as above: the default certificate until a custom domain is configured
  #checkov:skip=CKV_AWS_305:the distribution serves two documents by their paths; / has nothing to show
  enabled     = true
  comment     = "kms-jwt ${var.name}: JWKS and discovery"
  price_class = "PriceClass_100"

  origin {
    domain_name              = aws_s3_bucket.this.bucket_regional_domain_name
    origin_id                = "keys"
    origin_access_control_id = aws_cloudfront_origin_access_control.this.id
  }

  default_cache_behavior {
    target_origin_id           = "keys"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
    # Managed-CachingOptimized: honours the objects' Cache-Control (the publisher's max-age).
    cache_policy_id = "658327ea-f89d-4fab-a63d-7e88639e58f6"
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
  }

  tags = var.tags
}
