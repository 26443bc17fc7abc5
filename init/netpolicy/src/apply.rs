//! Hands nftables commands to nft as JSON on its standard input: the one place this crate
//! runs a program. nft applies a document as one transaction, all or nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nftables::schema::Nftables;

use crate::error::Error;

/// Where Debian's nftables package puts nft; the image copies it to the same path.
pub const NFT_PROGRAM: &str = "/usr/sbin/nft";

/// Runs `<program> -j -f -` with the commands on its standard input.
pub fn apply(program: &Path, commands: &Nftables) -> Result<(), Error> {
    let mut command = Command::new(program);
    command.args(["-j", "-f", "-"]);
    apply_with(command, commands)
}

/// Runs a prepared command that reads nft JSON on standard input, such as
/// `ip netns exec box nft -j -f -` in the host tests.
pub fn apply_with(mut command: Command, commands: &Nftables) -> Result<(), Error> {
    let json = serde_json::to_vec(commands).map_err(|source| Error::RulesetEncode { source })?;
    let program = PathBuf::from(command.get_program());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::NftStart {
            program: program.clone(),
            source,
        })?;
    let written = match child.stdin.take() {
        // Dropping the pipe at the end of this arm tells nft the document is complete.
        Some(mut stdin) => stdin.write_all(&json),
        None => Ok(()),
    };
    // Wait first: if nft exited early, its stderr says why, which beats "broken pipe".
    let output = child.wait_with_output().map_err(|source| Error::NftInput {
        program: program.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(Error::NftFailed {
            program,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned(),
        });
    }
    written.map_err(|source| Error::NftInput { program, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FirewallUids, base_ruleset};

    fn ruleset() -> Nftables<'static> {
        base_ruleset(&FirewallUids {
            netd: 1002,
            egress: vec![1000],
        })
    }

    #[test]
    fn the_document_arrives_on_standard_input() {
        let dir = std::env::temp_dir().join(format!("netpolicy-apply-{}", std::process::id()));
        let mut command = Command::new("sh");
        command.args(["-c", "cat > \"$0\"", dir.to_str().unwrap()]);
        apply_with(command, &ruleset()).unwrap();
        let written = std::fs::read(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(written, serde_json::to_vec(&ruleset()).unwrap());
    }

    #[test]
    fn a_refusal_carries_what_nft_printed() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "cat >/dev/null; echo 'Error: syntax error' >&2; exit 1",
        ]);
        let err = apply_with(command, &ruleset()).unwrap_err().to_string();
        assert!(
            err.contains("Error: syntax error") && err.contains("sh refused"),
            "{err}"
        );
        let err = apply(Path::new("/nonexistent/nft"), &ruleset()).unwrap_err();
        assert!(matches!(err, Error::NftStart { .. }), "{err}");
        assert!(err.to_string().contains("Debian package nftables"), "{err}");
    }
}
