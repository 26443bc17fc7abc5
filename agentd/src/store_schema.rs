//! The store's schema across releases, so /data works both ways across an update: a new
//! release on a trial boot must leave data the release before it can still read, because a
//! failed trial returns the box to that release with the same /data.
//!
//! ```text
//! meta "schema"      the newest migration applied to the data
//! meta "min_reader"  the oldest agentd schema that may open the data (read and write it)
//! ```
//! A migration either *expands* (adds tables, keys or fields that older agentd ignores: it runs
//! when the store opens, trial or not, and leaves `min_reader`) or *contracts* (changes or drops
//! what older agentd reads: it runs only once the running slot is committed, and raises
//! `min_reader` to its own schema). An older agentd opens newer data as long as `min_reader`
//! allows it, and refuses it with a clear error otherwise (the owner forced a downgrade past a
//! contraction: updating again is the way back).
//!
//! The rule for a release that adds a contraction: its code works on the data both before and
//! after it, since it runs on the uncontracted data until its slot is committed.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::error::Error;

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The store's first schema, before any migration.
pub const FIRST: u64 = 1;
const SCHEMA_KEY: &str = "schema";
const MIN_READER_KEY: &str = "min_reader";

pub struct Migration {
    /// The schema the data has after it; migrations follow each other from `FIRST + 1`.
    pub to: u64,
    pub contracts: bool,
    pub run: fn(&WriteTransaction) -> Result<(), redb::Error>,
}

/// This agentd's migrations, oldest first; schema 1 is the store as it began.
pub const MIGRATIONS: &[Migration] = &[
    // 2: the `memories` table (notes found by meaning). Expands: older agentd never opens it.
    Migration {
        to: 2,
        contracts: false,
        run: create_memories,
    },
];

fn create_memories(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(crate::store::MEMORIES)?;
    Ok(())
}

/// The schema an agentd with `migrations` writes.
pub fn newest(migrations: &[Migration]) -> u64 {
    migrations.last().map_or(FIRST, |m| m.to)
}

/// The `min_reader` of data fully migrated by `migrations`: the last contraction.
fn min_reader_of(migrations: &[Migration]) -> u64 {
    migrations
        .iter()
        .rev()
        .find(|m| m.contracts)
        .map_or(FIRST, |m| m.to)
}

/// What the data says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub schema: u64,
    pub min_reader: u64,
}

/// The migrations to run now on data at `found`: those it lacks, up to the first contraction,
/// and past it only when the running slot is `committed`. Refused: data this agentd may not
/// open.
pub fn to_run(
    found: Found,
    migrations: &[Migration],
    committed: bool,
) -> Result<&[Migration], Error> {
    let ours = newest(migrations);
    if found.min_reader > ours {
        return Err(Error::StoreSchema {
            found: found.schema,
            min_reader: found.min_reader,
            ours,
        });
    }
    let pending = &migrations[migrations.partition_point(|m| m.to <= found.schema)..];
    if committed {
        return Ok(pending);
    }
    let expanding = pending.iter().take_while(|m| !m.contracts).count();
    Ok(&pending[..expanding])
}

/// Reads the data's schema, or makes a fresh store's: fully migrated, every migration run on
/// the empty store in this transaction (so the tables they add exist from the start). Data
/// from before `min_reader` was kept can be read by every agentd.
pub fn found_or_fresh(
    tx: &WriteTransaction,
    migrations: &[Migration],
) -> Result<Found, redb::Error> {
    let (schema, min_reader) = {
        let meta = tx.open_table(META)?;
        let schema = meta.get(SCHEMA_KEY)?.map(|v| v.value());
        let min_reader = meta.get(MIN_READER_KEY)?.map(|v| v.value());
        (schema, min_reader)
    };
    if let Some(schema) = schema {
        return Ok(Found {
            schema,
            min_reader: min_reader.unwrap_or(FIRST),
        });
    }
    // META is closed meanwhile: a migration may open it (redb opens a table once per
    // transaction).
    for migration in migrations {
        (migration.run)(tx)?;
    }
    let fresh = Found {
        schema: newest(migrations),
        min_reader: min_reader_of(migrations),
    };
    let mut meta = tx.open_table(META)?;
    meta.insert(SCHEMA_KEY, fresh.schema)?;
    meta.insert(MIN_READER_KEY, fresh.min_reader)?;
    Ok(fresh)
}

/// Runs one migration and records it, in the caller's transaction.
pub fn apply(tx: &WriteTransaction, migration: &Migration) -> Result<(), redb::Error> {
    (migration.run)(tx)?;
    let mut meta = tx.open_table(META)?;
    meta.insert(SCHEMA_KEY, migration.to)?;
    if migration.contracts {
        meta.insert(MIN_READER_KEY, migration.to)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn nothing(_: &WriteTransaction) -> Result<(), redb::Error> {
        Ok(())
    }

    /// 2 expands, 3 contracts, 4 expands.
    pub(crate) const THREE: &[Migration] = &[
        Migration {
            to: 2,
            contracts: false,
            run: nothing,
        },
        Migration {
            to: 3,
            contracts: true,
            run: nothing,
        },
        Migration {
            to: 4,
            contracts: false,
            run: nothing,
        },
    ];

    fn found(schema: u64, min_reader: u64) -> Found {
        Found { schema, min_reader }
    }

    fn schemas(run: &[Migration]) -> Vec<u64> {
        run.iter().map(|m| m.to).collect()
    }

    #[test]
    fn a_trial_runs_the_expansions_up_to_the_first_contraction() {
        assert_eq!(schemas(to_run(found(1, 1), THREE, false).unwrap()), [2]);
        assert_eq!(
            schemas(to_run(found(2, 1), THREE, false).unwrap()),
            [] as [u64; 0]
        );
    }

    #[test]
    fn a_committed_slot_runs_every_pending_migration() {
        assert_eq!(
            schemas(to_run(found(1, 1), THREE, true).unwrap()),
            [2, 3, 4]
        );
        assert_eq!(schemas(to_run(found(3, 3), THREE, true).unwrap()), [4]);
        assert_eq!(
            schemas(to_run(found(4, 3), THREE, true).unwrap()),
            [] as [u64; 0]
        );
    }

    #[test]
    fn an_older_agentd_opens_newer_data_unless_a_contraction_forbids_it() {
        // This agentd knows schema 1 only. Data expanded to 2 (min_reader 1): it opens.
        assert!(to_run(found(2, 1), &[], false).unwrap().is_empty());
        // Data contracted at 3: refused, with what to do.
        let error = to_run(found(3, 3), &[], true).err().unwrap();
        let text = error.to_string();
        assert!(
            text.contains("schema 3") && text.contains("at least 3"),
            "{text}"
        );
        assert!(text.contains("update it again"), "{text}");
    }

    #[test]
    fn a_fresh_store_is_fully_migrated() {
        assert_eq!(newest(THREE), 4);
        assert_eq!(min_reader_of(THREE), 3);
        assert_eq!(newest(MIGRATIONS), 2);
        assert_eq!(min_reader_of(MIGRATIONS), FIRST);
    }

    #[test]
    fn migrations_follow_each_other() {
        for list in [MIGRATIONS, THREE] {
            for (i, migration) in list.iter().enumerate() {
                assert_eq!(migration.to, FIRST + 1 + i as u64);
            }
        }
    }
}
