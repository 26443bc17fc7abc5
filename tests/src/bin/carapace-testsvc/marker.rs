//! `marker`: proves the state directory persists across reboots. The first boot writes a
//! random value, later boots must find the same one.

use std::fs;
use std::io;
use std::path::Path;

const FILE_NAME: &str = "marker";

#[derive(Debug, PartialEq, Eq)]
pub enum Marker {
    Found(String),
    Created(String),
}

pub fn run() {
    let Some(dir) = std::env::var_os("STATE_DIRECTORY") else {
        return println!("marker error=STATE_DIRECTORY is not set");
    };
    match find_or_create(Path::new(&dir)) {
        Ok(Marker::Found(value)) => println!("marker found={value}"),
        Ok(Marker::Created(value)) => println!("marker created={value}"),
        Err(err) => println!("marker error={err}"),
    }
}

pub fn find_or_create(dir: &Path) -> io::Result<Marker> {
    let path = dir.join(FILE_NAME);
    match fs::read_to_string(&path) {
        Ok(value) => return Ok(Marker::Found(value.trim().to_owned())),
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        Err(_) => {}
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|err| io::Error::other(err.to_string()))?;
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    board_support::atomic_file::write(&path, format!("{value}\n").as_bytes(), 0o644)?;
    Ok(Marker::Created(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_then_found() {
        let dir = tempfile::tempdir().unwrap();
        let Marker::Created(value) = find_or_create(dir.path()).unwrap() else {
            panic!("a fresh directory has no marker");
        };
        assert_eq!(value.len(), 16);
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(find_or_create(dir.path()).unwrap(), Marker::Found(value));
    }
}
