//! What /proc/<pid>/status says about a process: the credentials it really runs with (the
//! `creds` console line proves the drop worked) and its resident memory.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// As the kernel prints them: 16 hex digits.
    pub cap_eff: String,
    pub cap_prm: String,
    pub cap_bnd: String,
}

pub fn read(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The real uid/gid (first of the four columns) and the capability sets.
pub fn credentials(status: &str) -> Option<Credentials> {
    let first = |name: &str| {
        field(status, name)?
            .split_whitespace()
            .next()?
            .parse::<u32>()
            .ok()
    };
    let hex16 = |name: &str| {
        let value = field(status, name)?;
        (value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| value.to_owned())
    };
    Some(Credentials {
        uid: first("Uid")?,
        gid: first("Gid")?,
        cap_eff: hex16("CapEff")?,
        cap_prm: hex16("CapPrm")?,
        cap_bnd: hex16("CapBnd")?,
    })
}

/// VmRSS in KiB; kernel threads and zombies have none.
pub fn rss_kib(status: &str) -> Option<u64> {
    field(status, "VmRSS")?
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tagentd\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t212\n\
Uid:\t1000\t1000\t1000\t1000\nGid:\t1001\t1001\t1001\t1001\nGroups:\t\n\
VmPeak:\t   12000 kB\nVmRSS:\t    4528 kB\nCapInh:\t0000000000000000\n\
CapPrm:\t0000000000001000\nCapEff:\t0000000000001000\nCapBnd:\t0000000000003000\n\
CapAmb:\t0000000000001000\nNoNewPrivs:\t1\n";

    #[test]
    fn reads_credentials() {
        assert_eq!(
            credentials(STATUS),
            Some(Credentials {
                uid: 1000,
                gid: 1001,
                cap_eff: "0000000000001000".to_owned(),
                cap_prm: "0000000000001000".to_owned(),
                cap_bnd: "0000000000003000".to_owned(),
            })
        );
        assert_eq!(credentials("Uid:\t1\n"), None);
    }

    #[test]
    fn reads_rss() {
        assert_eq!(rss_kib(STATUS), Some(4528));
        assert_eq!(rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let status = read(std::process::id() as i32).expect("own status");
        assert!(credentials(&status).is_some());
        assert!(rss_kib(&status).is_some_and(|kib| kib > 0));
    }
}
