# The lava worker AMI: Amazon Linux 2023 with lava-boot (its RPM, unit enabled) and Oracle
# Instant Client from the code area (SPEC §10), for x86_64 and arm64. From the repository root,
# with the RPMs of `make release` (one built on each architecture) in var.rpm_dir:
#   packer init ami/
#   packer build -var region=eu-west-1 -var code_area=s3://my-lava-code/prod \
#     -var lava_boot_version=0.1.0 -var iam_instance_profile=lava-ami-build ami/
# One architecture: add -only=amazon-ebs.x86_64 (or amazon-ebs.aarch64).

variable "region" {
  type        = string
  description = "Region the AMIs are built in."
}

variable "code_area" {
  type        = string
  description = "Code area (s3://BUCKET/PREFIX) holding _ami_/oracle/; lava-boot ami oracle reads it."
}

variable "lava_boot_version" {
  type        = string
  description = "Version of the lava-boot RPMs in rpm_dir."
}

variable "rpm_dir" {
  type        = string
  default     = "packaging/out"
  description = "Directory holding lava-boot-VERSION-1.x86_64.rpm and lava-boot-VERSION-1.aarch64.rpm."
}

variable "iam_instance_profile" {
  type        = string
  description = "Instance profile of the build instance: S3 read of the code area (boot/iam/instance-role.json)."
}

variable "oracle_type" {
  type        = string
  default     = "basiclite"
  description = "Oracle Instant Client package type (_ami_/oracle/instantclient-TYPE-linux-ARCH.zip)."
}

variable "instance_type_x86_64" {
  type    = string
  default = "t3.small"
}

variable "instance_type_aarch64" {
  type    = string
  default = "t4g.small"
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance; empty: the default VPC's."
}

variable "ami_name_prefix" {
  type    = string
  default = "lava-boot"
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
  tags = {
    lava_boot_version = var.lava_boot_version
    base_ami          = "{{ .SourceAMI }}"
    base_ami_name     = "{{ .SourceAMIName }}"
  }
}

# Source names are the RPM architectures, so the provisioner picks the matching RPM by name.
source "amazon-ebs" "x86_64" {
  region               = var.region
  instance_type        = var.instance_type_x86_64
  subnet_id            = var.subnet_id
  iam_instance_profile = var.iam_instance_profile
  ssh_username         = "ec2-user"
  ami_name             = "${var.ami_name_prefix}-${var.lava_boot_version}-al2023-x86_64-${local.stamp}"
  tags                 = merge(local.tags, { Name = "${var.ami_name_prefix}-${var.lava_boot_version}-x86_64" })
  source_ami_filter {
    owners      = ["amazon"]
    most_recent = true
    filters = {
      name                = "al2023-ami-2023.*-kernel-*-x86_64"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
  # lava-boot speaks IMDSv2 only.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"
}

source "amazon-ebs" "aarch64" {
  region               = var.region
  instance_type        = var.instance_type_aarch64
  subnet_id            = var.subnet_id
  iam_instance_profile = var.iam_instance_profile
  ssh_username         = "ec2-user"
  ami_name             = "${var.ami_name_prefix}-${var.lava_boot_version}-al2023-arm64-${local.stamp}"
  tags                 = merge(local.tags, { Name = "${var.ami_name_prefix}-${var.lava_boot_version}-arm64" })
  source_ami_filter {
    owners      = ["amazon"]
    most_recent = true
    filters = {
      name                = "al2023-ami-2023.*-kernel-*-arm64"
      architecture        = "arm64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"
}

build {
  sources = ["source.amazon-ebs.x86_64", "source.amazon-ebs.aarch64"]

  provisioner "file" {
    source      = "${var.rpm_dir}/lava-boot-${var.lava_boot_version}-1.${source.name}.rpm"
    destination = "/tmp/lava-boot.rpm"
  }

  provisioner "shell" {
    script           = "${path.root}/provision.sh"
    environment_vars = ["SOURCE=${var.code_area}", "ORACLE_TYPE=${var.oracle_type}", "RPM=/tmp/lava-boot.rpm"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
  }
}
