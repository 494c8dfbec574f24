# The plugin lava-boot.pkr.hcl builds with; `packer init ami/` installs it. Apart from the
# template so Packers too old to know required_plugins (Debian's 1.6.6) can check the template.
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}
