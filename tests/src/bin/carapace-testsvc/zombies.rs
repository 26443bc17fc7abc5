//! Counting zombie processes through /proc.

use std::fs;
use std::io;
use std::path::Path;

/// The state letter of a process from its /proc/<pid>/stat line. The command name in
/// parentheses may itself hold spaces and parentheses, so the state is read after the last ')'.
pub fn process_state(stat: &str) -> Option<char> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.trim_start().chars().next()
}

/// Processes in state `Z` under `proc_dir` (normally /proc). A process that exits while
/// being looked at is simply not counted.
pub fn count_zombies(proc_dir: &Path) -> io::Result<usize> {
    let mut zombies = 0;
    for entry in fs::read_dir(proc_dir)? {
        let entry = entry?;
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        if let Ok(stat) = fs::read_to_string(entry.path().join("stat"))
            && process_state(&stat) == Some('Z')
        {
            zombies += 1;
        }
    }
    Ok(zombies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_after_the_command_name() {
        assert_eq!(process_state("1 (init) S 0 1 1 0 -1"), Some('S'));
        assert_eq!(process_state("42 (a) b) Z 1 42"), Some('Z'));
        assert_eq!(process_state("7 (with space) R 1"), Some('R'));
        assert_eq!(process_state("garbage"), None);
        assert_eq!(process_state("9 (x)"), None);
    }

    #[test]
    fn counts_zombies_in_a_fake_proc() {
        let proc_dir = tempfile::tempdir().unwrap();
        let processes = [
            ("1", "1 (init) S 0"),
            ("20", "20 (sleep) Z 1"),
            ("21", "21 (weird) Z) Z 1"),
            ("22", "22 (agentd) S 1"),
        ];
        for (pid, stat) in processes {
            fs::create_dir(proc_dir.path().join(pid)).unwrap();
            fs::write(proc_dir.path().join(pid).join("stat"), stat).unwrap();
        }
        // Not processes, and a process that vanished before its stat was read.
        fs::create_dir(proc_dir.path().join("sys")).unwrap();
        fs::write(proc_dir.path().join("uptime"), "1.0 2.0").unwrap();
        fs::create_dir(proc_dir.path().join("30")).unwrap();
        assert_eq!(count_zombies(proc_dir.path()).unwrap(), 2);
    }

    #[test]
    fn real_proc_can_be_read() {
        count_zombies(Path::new("/proc")).unwrap();
    }
}
