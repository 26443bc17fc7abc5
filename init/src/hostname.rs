//! The host name, from the image's /etc/carapace/image.toml (board-support's ImageInfo).

use board_support::{IMAGE_INFO_PATH, ImageInfo};

pub fn parse(text: &str) -> Result<String, String> {
    ImageInfo::parse(text)
        .map(|info| info.hostname)
        .map_err(|err| err.to_string())
}

/// Sets the host name; a broken image.toml leaves the kernel's default and is logged.
pub fn apply() {
    let result = std::fs::read_to_string(IMAGE_INFO_PATH)
        .map_err(|err| err.to_string())
        .and_then(|text| parse(&text))
        .and_then(|name| {
            rustix::system::sethostname(name.as_bytes()).map_err(|err| err.to_string())
        });
    if let Err(err) = result {
        log_error!("hostname not set from {IMAGE_INFO_PATH}: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hostname_of_image_toml() {
        let text = "name = \"x86-64-qemu\"\nboard = \"x86-64\"\nversion = \"0.1.0\"\nbuild_id = \"0123456789abcdef\"\nhostname = \"carapace\"\n";
        assert_eq!(parse(text), Ok("carapace".to_owned()));
    }

    #[test]
    fn refuses_an_odd_name() {
        let text = "name = \"x86-64-qemu\"\nboard = \"x86-64\"\nversion = \"0.1.0\"\nbuild_id = \"0123456789abcdef\"\nhostname = \"a b\"\n";
        assert!(parse(text).expect_err("odd").contains("hostname"));
    }
}
