variable "localstack_endpoint" {
  description = "LocalStack's edge endpoint."
  type        = string
  default     = "http://127.0.0.1:4566"
}

variable "region" {
  description = "AWS region to use against LocalStack."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Key set name."
  type        = string
  default     = "jwt-signer-tf"
}

variable "replica_regions" {
  description = "Replica regions of a multi-Region set (LocalStack serves every region at one endpoint)."
  type        = list(string)
  default     = []
}
