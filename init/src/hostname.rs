//! The host name, from the image's /etc/carapace/image.toml.

use serde::Deserialize;

pub const IMAGE_TOML: &str = "/etc/carapace/image.toml";
const MAX_LEN: usize = 64;

/// image.toml has more fields (name, board, version, build_id); only this one matters here.
#[derive(Deserialize)]
struct ImageInfo {
    hostname: String,
}

pub fn parse(text: &str) -> Result<String, String> {
    let info: ImageInfo =
        toml::from_str(text).map_err(|err| err.to_string().trim_end().replace('\n', " "))?;
    let name = info.hostname;
    let valid = !name.is_empty()
        && name.len() <= MAX_LEN
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(format!("hostname: {name:?} is not a valid host name"));
    }
    Ok(name)
}

/// Sets the host name; a broken image.toml leaves the kernel's default and is logged.
pub fn apply() {
    let result = std::fs::read_to_string(IMAGE_TOML)
        .map_err(|err| err.to_string())
        .and_then(|text| parse(&text))
        .and_then(|name| {
            rustix::system::sethostname(name.as_bytes()).map_err(|err| err.to_string())
        });
    if let Err(err) = result {
        log_error!("hostname not set from {IMAGE_TOML}: {err}");
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
    fn refuses_missing_or_odd_names() {
        assert!(
            parse("name = \"x\"\n")
                .expect_err("missing")
                .contains("hostname")
        );
        assert!(parse("hostname = \"a b\"\n").is_err());
        assert!(parse("hostname = \"\"\n").is_err());
        assert!(parse(&format!("hostname = \"{}\"\n", "a".repeat(65))).is_err());
    }
}
