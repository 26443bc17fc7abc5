//! `autoboot.txt`, the file on a Raspberry Pi's first FAT partition that tells the firmware
//! which partition to boot: one reader and one writer, for boot control on the box and for the
//! image builder once it writes Pi images.
//!
//! What the firmware does with it (raspberrypi/documentation,
//! `documentation/asciidoc/computers/config_txt/autoboot.adoc`, read 2026): the file is at
//! most 512 bytes; `boot_partition=N` picks the partition; the `[tryboot]` filter passes only
//! when the one-shot tryboot flag is set, so a `boot_partition` under it overrides `[all]`'s
//! for that one boot; `tryboot_a_b=1` makes a tryboot load the normal `config.txt` from that
//! partition instead of `tryboot.txt`, which is what lets each slot keep its own, unchanged
//! boot partition.

use std::path::Path;

use crate::error::Error;

/// Its name in the root of the first FAT partition.
pub const AUTOBOOT_FILE: &str = "autoboot.txt";

/// The firmware reads no more than this (autoboot.adoc: "limited to 512 bytes"); a longer
/// file would not mean to the firmware what it means to us.
pub const AUTOBOOT_MAX_BYTES: usize = 512;

/// The two partition numbers the file names. `tryboot_a_b=1` is not a field: the file is
/// useless to us without it, so it is always written and required when read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Autoboot {
    /// `[all]`'s: what every boot without the tryboot flag boots.
    pub boot_partition: u32,
    /// `[tryboot]`'s: what the one boot after `reboot "0 tryboot"` boots.
    pub tryboot_partition: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    All,
    Tryboot,
}

impl Autoboot {
    /// The file's exact text; the same layout as the documentation's example.
    pub fn render(&self) -> String {
        format!(
            "[all]\ntryboot_a_b=1\nboot_partition={}\n[tryboot]\nboot_partition={}\n",
            self.boot_partition, self.tryboot_partition
        )
    }

    /// Reads what [`Autoboot::render`] writes. Blank lines, `#` comments and CRLF line ends
    /// (an edit on another computer) are accepted and dropped on the next write. Any other
    /// section or setting is refused rather than dropped: the firmware would obey it, and a
    /// rewrite would silently change what boots. `path` is for the errors only.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Autoboot, Error> {
        let setting = |problem| Error::AutobootSetting {
            path: path.to_path_buf(),
            problem,
        };
        if bytes.len() > AUTOBOOT_MAX_BYTES {
            return Err(setting(
                "it is longer than the 512 bytes the firmware reads",
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| setting("it is not text"))?;
        // Lines before the first section are under the firmware's default filter, [all].
        let mut section = Section::All;
        let mut tryboot_a_b = None;
        let mut all = None;
        let mut tryboot = None;
        for (index, raw) in text.lines().enumerate() {
            let line_error = |problem| Error::AutobootLine {
                path: path.to_path_buf(),
                line: index + 1,
                problem,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                section = match line {
                    "[all]" => Section::All,
                    "[tryboot]" => Section::Tryboot,
                    _ => return Err(line_error("only the [all] and [tryboot] sections are used")),
                };
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| line_error("it is neither a section nor a key=value setting"))?;
            let slot = match (key.trim(), section) {
                ("tryboot_a_b", Section::All) => {
                    if value.trim() != "1" {
                        return Err(line_error(
                            "tryboot_a_b must be 1, or a tryboot would not switch partitions",
                        ));
                    }
                    &mut tryboot_a_b
                }
                ("tryboot_a_b", Section::Tryboot) => {
                    return Err(line_error("tryboot_a_b belongs in [all]"));
                }
                ("boot_partition", Section::All) => &mut all,
                ("boot_partition", Section::Tryboot) => &mut tryboot,
                _ => {
                    return Err(line_error(
                        "only tryboot_a_b and boot_partition are used; a rewrite would drop it",
                    ));
                }
            };
            let number = value
                .trim()
                .parse::<u32>()
                .map_err(|_| line_error("the value is not a number"))?;
            // The firmware would take one of the two; which one is not ours to guess.
            if slot.replace(number).is_some() {
                return Err(line_error("this setting appears twice in its section"));
            }
        }
        if tryboot_a_b.is_none() {
            return Err(setting("[all] has no tryboot_a_b=1"));
        }
        Ok(Autoboot {
            boot_partition: all.ok_or_else(|| setting("[all] has no boot_partition"))?,
            tryboot_partition: tryboot.ok_or_else(|| setting("[tryboot] has no boot_partition"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Autoboot, Error> {
        Autoboot::parse(text.as_bytes(), Path::new("/p1/autoboot.txt"))
    }

    #[test]
    fn render_is_the_documented_layout_and_parses_back() {
        let autoboot = Autoboot {
            boot_partition: 2,
            tryboot_partition: 3,
        };
        assert_eq!(
            autoboot.render(),
            "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
        );
        assert_eq!(parse(&autoboot.render()).unwrap(), autoboot);
    }

    #[test]
    fn comments_blank_lines_crlf_and_a_leading_all_free_block_are_read() {
        let text = "# edited on a laptop\r\ntryboot_a_b=1\r\n\r\nboot_partition=3\r\n\
                    [tryboot]\r\n boot_partition = 2 \r\n";
        assert_eq!(
            parse(text).unwrap(),
            Autoboot {
                boot_partition: 3,
                tryboot_partition: 2
            }
        );
    }

    #[test]
    fn damage_is_refused_with_the_file_and_the_line() {
        let ok = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";
        let cases: [(String, Option<usize>, &str); 9] = [
            (ok.replace("=2", "=two"), Some(3), "not a number"),
            (ok.replace("=1", "=0"), Some(2), "tryboot_a_b must be 1"),
            (ok.replace("[tryboot]", "[pi5]"), Some(4), "only the [all]"),
            (format!("{ok}os_prefix=b/\n"), Some(6), "only tryboot_a_b"),
            (format!("{ok}boot_partition=2\n"), Some(6), "twice"),
            (
                ok.replace("boot_partition=3", "boot_partit"),
                Some(5),
                "neither",
            ),
            (ok.replace("tryboot_a_b=1\n", ""), None, "no tryboot_a_b"),
            (
                ok.replace("[tryboot]\nboot_partition=3\n", ""),
                None,
                "[tryboot] has no",
            ),
            (format!("{ok}{}", "#".repeat(512)), None, "512 bytes"),
        ];
        for (text, line, problem) in cases {
            let err = parse(&text).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("/p1/autoboot.txt"), "{message}");
            assert!(message.contains(problem), "{message}");
            match line {
                Some(line) => assert!(
                    matches!(err, Error::AutobootLine { line: l, .. } if l == line),
                    "{message}"
                ),
                None => assert!(matches!(err, Error::AutobootSetting { .. }), "{message}"),
            }
        }
    }

    #[test]
    fn binary_garbage_is_not_text() {
        let err = Autoboot::parse(&[0xff, 0xfe, b'\n'], Path::new("autoboot.txt")).unwrap_err();
        assert!(err.to_string().contains("not text"), "{err}");
    }
}
