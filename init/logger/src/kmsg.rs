//! One /dev/kmsg record (Documentation/ABI/testing/dev-kmsg): `<prio>,<seq>,<usec>,<flags>;
//! <text>`, then optional continuation lines of ` KEY=value` that the log does not keep.

#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    /// Microseconds since boot (CLOCK_MONOTONIC).
    pub usec: u64,
    pub text: &'a str,
}

impl<'a> Record<'a> {
    pub fn parse(record: &'a str) -> Option<Record<'a>> {
        let (header, rest) = record.split_once(';')?;
        let mut fields = header.split(',');
        let _prio = fields.next()?;
        let seq = fields.next()?.parse().ok()?;
        let usec = fields.next()?.parse().ok()?;
        let text = rest.split('\n').next().unwrap_or_default();
        Some(Record { seq, usec, text })
    }

    /// `[   12.345678] text`, as dmesg prints it; escapes (`\x0a`) stay as the kernel wrote them.
    pub fn to_line(&self) -> String {
        format!(
            "[{:5}.{:06}] {}",
            self.usec / 1_000_000,
            self.usec % 1_000_000,
            self.text
        )
    }
}

/// How many records were overwritten between the one read last (`previous`) and `seq`.
pub fn lost_between(previous: Option<u64>, seq: u64) -> Option<u64> {
    let previous = previous?;
    let lost = seq.checked_sub(previous)?.checked_sub(1)?;
    (lost > 0).then_some(lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_record_and_drops_its_dictionary() {
        let record =
            Record::parse("6,339,5140900,-;carapace: ready slot=a boot_ms=1\n SUBSYSTEM=x\n")
                .expect("record");
        assert_eq!(
            record,
            Record {
                seq: 339,
                usec: 5_140_900,
                text: "carapace: ready slot=a boot_ms=1"
            }
        );
        assert_eq!(
            record.to_line(),
            "[    5.140900] carapace: ready slot=a boot_ms=1"
        );
    }

    #[test]
    fn refuses_what_is_not_a_record() {
        assert_eq!(Record::parse("no header"), None);
        assert_eq!(Record::parse("6,x,1,-;text"), None);
        assert_eq!(Record::parse("6;text"), None);
    }

    #[test]
    fn counts_the_records_skipped_over() {
        assert_eq!(lost_between(None, 5), None);
        assert_eq!(lost_between(Some(4), 5), None);
        assert_eq!(lost_between(Some(4), 10), Some(5));
        assert_eq!(lost_between(Some(10), 3), None);
    }
}
