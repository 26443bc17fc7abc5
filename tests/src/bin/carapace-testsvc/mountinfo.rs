//! Reading /proc/self/mountinfo (proc(5)):
//! `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`

#[derive(Debug, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// From the per-mount options, which is what makes writes fail with EROFS.
    pub read_only: bool,
    /// The per-mount options (`rw,nosuid,nodev,noexec`).
    pub options: String,
    /// The file system's own options (`rw,size=16384k,mode=755`, `hidepid=invisible`).
    pub super_options: String,
}

pub fn parse_line(line: &str) -> Option<Mount> {
    let (mount_fields, fs_fields) = line.split_once(" - ")?;
    let mut mount_fields = mount_fields.split(' ');
    let mount_point = mount_fields.nth(4)?;
    let options = mount_fields.next()?;
    let mut fs_fields = fs_fields.split(' ');
    let fs_type = fs_fields.next()?;
    let source = fs_fields.next()?;
    let super_options = fs_fields.next().unwrap_or_default();
    Some(Mount {
        mount_point: unescape(mount_point),
        fs_type: unescape(fs_type),
        source: unescape(source),
        read_only: options.split(',').any(|option| option == "ro"),
        options: options.to_owned(),
        super_options: unescape(super_options),
    })
}

/// The mount a process sees at `/`: the last one listed there, since later mounts stack on
/// top of earlier ones.
pub fn root_mount(mountinfo: &str) -> Option<Mount> {
    mountinfo
        .lines()
        .filter_map(parse_line)
        .rfind(|m| m.mount_point == "/")
}

/// The kernel writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
1 1 0:2 / / rw - rootfs rootfs rw
22 1 253:0 / / ro,relatime - erofs /dev/mapper/root ro,user_xattr,acl
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
24 22 8:3 / /data rw,nosuid,nodev shared:2 master:1 - ext4 /dev/vda3 rw
25 22 0:30 / /mnt/with\\040space rw - tmpfs my\\134src rw
";

    #[test]
    fn root_is_the_last_mount_at_slash() {
        assert_eq!(
            root_mount(MOUNTINFO),
            Some(Mount {
                mount_point: "/".to_owned(),
                fs_type: "erofs".to_owned(),
                source: "/dev/mapper/root".to_owned(),
                read_only: true,
                options: "ro,relatime".to_owned(),
                super_options: "ro,user_xattr,acl".to_owned(),
            })
        );
    }

    #[test]
    fn optional_fields_and_escapes() {
        let lines: Vec<&str> = MOUNTINFO.lines().collect();
        let data = parse_line(lines[3]).unwrap();
        assert_eq!(
            (data.mount_point.as_str(), data.fs_type.as_str()),
            ("/data", "ext4")
        );
        assert!(!data.read_only);
        let odd = parse_line(lines[4]).unwrap();
        assert_eq!(odd.mount_point, "/mnt/with space");
        assert_eq!(odd.source, "my\\src");
    }

    #[test]
    fn read_only_comes_from_the_mount_options() {
        let line = "30 22 8:3 / /x rw,relatime - ext4 /dev/vda3 ro";
        assert!(!parse_line(line).unwrap().read_only);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_line("1 1 0:2 / /"), None);
        assert_eq!(parse_line("1 1 0:2 - ext4"), None);
        assert_eq!(root_mount("garbage\n"), None);
    }

    #[test]
    fn unescape_leaves_plain_backslashes() {
        assert_eq!(unescape("a\\0"), "a\\0");
        assert_eq!(unescape("\\011tab"), "\ttab");
    }

    #[test]
    fn real_mountinfo_has_a_root() {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(root_mount(&text).is_some());
    }
}
