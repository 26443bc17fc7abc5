//! agentd's one store on /data (`store.redb`): the inbox and outbox, users and pairing codes,
//! conversations, kept facts, reminders and the settings. Every change that belongs together
//! is one transaction, committed to disk before anyone is told (redb's default durability).
//!
//! ```text
//! pending    seq            → Incoming (JSON)     stored, not yet answered
//! seen       "telegram:901" → stored at (s)       drops a second delivery (kept 48 h)
//! outbox     seq            → OutboxEntry (JSON)  replies not yet taken by the IM server
//! users      "telegram:42"  → User (JSON)
//! codes      code           → Invite (JSON)       one-time pairing codes
//! history    "telegram:42"  → History (JSON)      per chat
//! facts      seq            → text
//! reminders  seq            → Reminder (JSON)
//! memories   seq            → Memory (JSON)       notes found by meaning (schema 2)
//! settings   "current" | "last_good" | "trial" → owner settings (TOML);
//!            "owner_code" → the first owner code, shown at each start until paired
//! meta       "schema" | "min_reader" | "seq" | "pairing_refused" | "reboot_asked_at" … → u64
//! ```
//! `schema` and `min_reader` keep /data readable across updates and rollbacks (store_schema).

use std::path::Path;

use carapace_im::{ChannelKind, Incoming, Outgoing};
use carapace_llm::Message;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::Error;

const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
const SEEN: TableDefinition<&str, u64> = TableDefinition::new("seen");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("codes");
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");
const FACTS: TableDefinition<u64, &str> = TableDefinition::new("facts");
const REMINDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("reminders");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
/// Made by schema 2's migration (store_schema.rs), not at open like the tables of schema 1.
pub(crate) const MEMORIES: TableDefinition<u64, &[u8]> = TableDefinition::new("memories");
use crate::store_schema::{self, META, MIGRATIONS, Migration};

pub const FILE_NAME: &str = "store.redb";
/// How long a delivered id is remembered (Telegram keeps an update for 24 h).
const SEEN_FOR_SECS: u64 = 48 * 3600;
/// redb's page cache; the store is small and the box's memory is not.
const CACHE_BYTES: usize = 1 << 20;
/// How many memories the box keeps: each recall reads them all (about 5 KB each with its
/// vector), so this bounds a recall's work to what a small board does in well under a second.
pub const MAX_MEMORIES: u64 = 10_000;
/// The longest memory: a note, not a document (the embedding model reads 256 word pieces,
/// about 1,000 characters, and ignores the rest for finding it; the text is kept whole).
pub const MAX_MEMORY_CHARS: usize = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    User,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub channel: ChannelKind,
    pub id: String,
    pub name: String,
    pub role: Role,
    pub since: u64,
}

impl User {
    pub fn key(&self) -> String {
        user_key(self.channel, &self.id)
    }
}

pub fn user_key(channel: ChannelKind, id: &str) -> String {
    format!("{}:{id}", channel.name())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub role: Role,
    pub created: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub channel: ChannelKind,
    pub chat: String,
    pub message: Outgoing,
}

/// One chat's memory: a summary of what fell out of the window, and the recent turns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub summary: String,
    pub messages: Vec<Message>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// Seconds since 1970.
    pub due: u64,
    pub channel: ChannelKind,
    pub chat: String,
    pub text: String,
}

/// A note the box was asked to keep, found again by meaning (memory.rs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub text: String,
    /// Seconds since 1970, when it was kept.
    pub at: u64,
    /// Its vector from the local embedding model (unit length); None while the engine has not
    /// answered for it yet (a recall fills it in).
    pub embedding: Option<Vec<f32>>,
}

/// The first entry of a queue (inbox or outbox): its number, and the entry or why it cannot
/// be read.
pub type Queued<T> = (u64, Result<T, Error>);

/// Everything that answering one message changes, written at once.
#[derive(Debug, Default)]
pub struct Answer {
    pub replies: Vec<OutboxEntry>,
    pub history: Option<(String, History)>,
}

pub struct Store {
    db: Database,
    migrations: &'static [Migration],
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Our own types, made of strings, numbers and JSON values: cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn from_json<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|error| Error::StoreData {
        table,
        reason: error.to_string(),
    })
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, Error> {
        Store::open_with(dir, MIGRATIONS)
    }

    /// Opens the store and runs the migrations that may run on a trial boot (expansions);
    /// `migrate_committed` runs the rest once the running slot is committed.
    fn open_with(dir: &Path, migrations: &'static [Migration]) -> Result<Store, Error> {
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|error| Error::Store(redb::Error::from(error)))?;
        let store = Store { db, migrations };
        store.write(|tx| {
            // Opening creates the table: readers never meet a missing one.
            tx.open_table(PENDING)?;
            tx.open_table(SEEN)?;
            tx.open_table(OUTBOX)?;
            tx.open_table(USERS)?;
            tx.open_table(CODES)?;
            tx.open_table(HISTORY)?;
            tx.open_table(FACTS)?;
            tx.open_table(REMINDERS)?;
            tx.open_table(SETTINGS)?;
            store_schema::found_or_fresh(tx, migrations)
        })?;
        store.migrate(false)?;
        Ok(store)
    }

    /// Runs the migrations that wait for the running slot to be committed (contractions, and
    /// what comes after them). Returns how many ran.
    pub fn migrate_committed(&self) -> Result<usize, Error> {
        self.migrate(true)
    }

    /// Each migration in a transaction of its own, with its schema recorded in it: a power
    /// cut leaves the data at one schema or the next.
    fn migrate(&self, committed: bool) -> Result<usize, Error> {
        let mut ran = 0;
        loop {
            let found = self.write(|tx| store_schema::found_or_fresh(tx, self.migrations))?;
            let Some(next) = store_schema::to_run(found, self.migrations, committed)?.first()
            else {
                return Ok(ran);
            };
            self.write(|tx| store_schema::apply(tx, next))?;
            println!("store: migrated to schema {}", next.to);
            ran += 1;
        }
    }

    /// Runs `change` in one write transaction and commits it.
    fn write<T>(
        &self,
        change: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, Error> {
        let tx = self.db.begin_write().map_err(redb::Error::from)?;
        let value = change(&tx)?;
        tx.commit().map_err(redb::Error::from)?;
        Ok(value)
    }

    fn read<T>(
        &self,
        look: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, Error> {
        let tx = self.db.begin_read().map_err(redb::Error::from)?;
        Ok(look(&tx)?)
    }

    /// Stores a batch from a channel; returns how many were new. Once this returns, the batch
    /// may be acknowledged to the IM server.
    pub fn store_incoming(&self, batch: &[Incoming], now: u64) -> Result<usize, Error> {
        self.write(|tx| {
            let mut pending = tx.open_table(PENDING)?;
            let mut seen = tx.open_table(SEEN)?;
            let mut meta = tx.open_table(META)?;
            let cutoff = now.saturating_sub(SEEN_FOR_SECS);
            seen.retain(|_, stored| stored >= cutoff)?;
            let mut new = 0;
            for message in batch {
                let key = format!("{}:{}", message.channel.name(), message.id);
                if seen.get(key.as_str())?.is_some() {
                    continue;
                }
                seen.insert(key.as_str(), now)?;
                let seq = next_seq(&mut meta)?;
                pending.insert(seq, to_json(message).as_slice())?;
                new += 1;
            }
            Ok(new)
        })
    }

    /// The oldest message not yet answered. An entry that cannot be read comes back as an
    /// error with its number, so the caller can drop it instead of being stuck behind it.
    pub fn next_pending(&self) -> Result<Option<Queued<Incoming>>, Error> {
        let first = self.read(|tx| {
            let table = tx.open_table(PENDING)?;
            let first = table.first()?;
            Ok(first.map(|(k, v)| (k.value(), v.value().to_vec())))
        })?;
        Ok(first.map(|(seq, bytes)| (seq, from_json("pending", &bytes))))
    }

    /// Marks message `seq` answered, queues its replies and keeps the chat's new history, in
    /// one transaction: after a crash, either all of it happened or the message is still
    /// pending.
    pub fn finish(&self, seq: u64, answer: Answer) -> Result<(), Error> {
        self.write(|tx| {
            tx.open_table(PENDING)?.remove(seq)?;
            let mut outbox = tx.open_table(OUTBOX)?;
            let mut meta = tx.open_table(META)?;
            for reply in &answer.replies {
                let seq = next_seq(&mut meta)?;
                outbox.insert(seq, to_json(reply).as_slice())?;
            }
            if let Some((key, history)) = &answer.history {
                tx.open_table(HISTORY)?
                    .insert(key.as_str(), to_json(history).as_slice())?;
            }
            Ok(())
        })
    }

    /// Queues a message that answers nothing (a reminder, a settings outcome).
    pub fn queue(&self, entry: &OutboxEntry) -> Result<(), Error> {
        self.write(|tx| {
            let mut meta = tx.open_table(META)?;
            let seq = next_seq(&mut meta)?;
            tx.open_table(OUTBOX)?
                .insert(seq, to_json(entry).as_slice())?;
            Ok(())
        })
    }

    /// The oldest reply the IM server has not taken yet (an unreadable one as an error, as
    /// in [`Store::next_pending`]).
    pub fn next_outgoing(&self) -> Result<Option<Queued<OutboxEntry>>, Error> {
        let first = self.read(|tx| {
            let table = tx.open_table(OUTBOX)?;
            let first = table.first()?;
            Ok(first.map(|(k, v)| (k.value(), v.value().to_vec())))
        })?;
        Ok(first.map(|(seq, bytes)| (seq, from_json("outbox", &bytes))))
    }

    pub fn outbox_len(&self) -> Result<u64, Error> {
        self.read(|tx| tx.open_table(OUTBOX)?.len().map_err(redb::Error::from))
    }

    pub fn sent(&self, seq: u64) -> Result<(), Error> {
        self.write(|tx| {
            tx.open_table(OUTBOX)?.remove(seq)?;
            Ok(())
        })
    }

    pub fn user(&self, channel: ChannelKind, id: &str) -> Result<Option<User>, Error> {
        let bytes = self.read(|tx| {
            let table = tx.open_table(USERS)?;
            let value = table.get(user_key(channel, id).as_str())?;
            Ok(value.map(|v| v.value().to_vec()))
        })?;
        bytes.map(|b| from_json("users", &b)).transpose()
    }

    pub fn users(&self) -> Result<Vec<User>, Error> {
        let all = self.read(|tx| {
            let table = tx.open_table(USERS)?;
            let mut all = Vec::new();
            for row in table.iter()? {
                let (_, value) = row?;
                all.push(value.value().to_vec());
            }
            Ok(all)
        })?;
        all.iter().map(|b| from_json("users", b)).collect()
    }

    pub fn has_owner(&self) -> Result<bool, Error> {
        Ok(self.users()?.iter().any(|u| u.role == Role::Owner))
    }

    pub fn put_user(&self, user: &User) -> Result<(), Error> {
        self.write(|tx| {
            tx.open_table(USERS)?
                .insert(user.key().as_str(), to_json(user).as_slice())?;
            Ok(())
        })
    }

    pub fn remove_user(&self, key: &str) -> Result<bool, Error> {
        self.write(|tx| Ok(tx.open_table(USERS)?.remove(key)?.is_some()))
    }

    pub fn add_code(&self, code: &str, invite: &Invite) -> Result<(), Error> {
        self.write(|tx| {
            tx.open_table(CODES)?
                .insert(code, to_json(invite).as_slice())?;
            Ok(())
        })
    }

    pub fn codes(&self) -> Result<Vec<(String, Invite)>, Error> {
        let all = self.read(|tx| {
            let table = tx.open_table(CODES)?;
            let mut all = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                all.push((key.value().to_string(), value.value().to_vec()));
            }
            Ok(all)
        })?;
        all.into_iter()
            .map(|(code, bytes)| Ok((code, from_json("codes", &bytes)?)))
            .collect()
    }

    /// Voids `code` and adds `user`, in one transaction: a code binds exactly one person.
    pub fn redeem(&self, code: &str, user: &User) -> Result<(), Error> {
        self.write(|tx| {
            tx.open_table(CODES)?.remove(code)?;
            tx.open_table(USERS)?
                .insert(user.key().as_str(), to_json(user).as_slice())?;
            Ok(())
        })
    }

    pub fn remove_codes(&self) -> Result<(), Error> {
        self.write(|tx| {
            tx.open_table(CODES)?.retain(|_, _| false)?;
            Ok(())
        })
    }

    pub fn history(&self, key: &str) -> Result<History, Error> {
        let bytes = self.read(|tx| {
            let table = tx.open_table(HISTORY)?;
            Ok(table.get(key)?.map(|v| v.value().to_vec()))
        })?;
        Ok(bytes
            .map(|b| from_json("history", &b))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn add_fact(&self, text: &str) -> Result<u64, Error> {
        self.write(|tx| {
            let mut meta = tx.open_table(META)?;
            let seq = next_seq(&mut meta)?;
            tx.open_table(FACTS)?.insert(seq, text)?;
            Ok(seq)
        })
    }

    pub fn remove_fact(&self, id: u64) -> Result<bool, Error> {
        self.write(|tx| Ok(tx.open_table(FACTS)?.remove(id)?.is_some()))
    }

    pub fn facts(&self) -> Result<Vec<(u64, String)>, Error> {
        self.read(|tx| {
            let table = tx.open_table(FACTS)?;
            let mut all = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                all.push((key.value(), value.value().to_string()));
            }
            Ok(all)
        })
    }

    pub fn add_reminder(&self, reminder: &Reminder) -> Result<u64, Error> {
        self.write(|tx| {
            let mut meta = tx.open_table(META)?;
            let seq = next_seq(&mut meta)?;
            tx.open_table(REMINDERS)?
                .insert(seq, to_json(reminder).as_slice())?;
            Ok(seq)
        })
    }

    pub fn reminders(&self) -> Result<Vec<(u64, Reminder)>, Error> {
        self.json_rows(REMINDERS, "reminders")
    }

    /// Every row of a table of JSON values keyed by sequence number, in key order.
    fn json_rows<T: DeserializeOwned>(
        &self,
        definition: TableDefinition<u64, &[u8]>,
        name: &'static str,
    ) -> Result<Vec<(u64, T)>, Error> {
        let all = self.read(|tx| {
            let table = tx.open_table(definition)?;
            let mut all = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                all.push((key.value(), value.value().to_vec()));
            }
            Ok(all)
        })?;
        all.into_iter()
            .map(|(id, bytes)| Ok((id, from_json(name, &bytes)?)))
            .collect()
    }

    pub fn remove_reminder(&self, id: u64) -> Result<bool, Error> {
        self.write(|tx| Ok(tx.open_table(REMINDERS)?.remove(id)?.is_some()))
    }

    /// Delivers a due reminder: removes it and queues its message in one transaction, so it
    /// is sent exactly once even across a power cut.
    pub fn deliver_reminder(&self, id: u64, entry: &OutboxEntry) -> Result<(), Error> {
        self.write(|tx| {
            if tx.open_table(REMINDERS)?.remove(id)?.is_some() {
                let mut meta = tx.open_table(META)?;
                let seq = next_seq(&mut meta)?;
                tx.open_table(OUTBOX)?
                    .insert(seq, to_json(entry).as_slice())?;
            }
            Ok(())
        })
    }

    /// Keeps a memory; refused when it is too long or the store holds [`MAX_MEMORIES`].
    pub fn add_memory(
        &self,
        text: &str,
        at: u64,
        embedding: Option<Vec<f32>>,
    ) -> Result<u64, Error> {
        let chars = text.chars().count();
        if chars > MAX_MEMORY_CHARS {
            return Err(Error::MemoryTooLong {
                chars,
                max: MAX_MEMORY_CHARS,
            });
        }
        let memory = Memory {
            text: text.into(),
            at,
            embedding,
        };
        let added = self.write(|tx| {
            let mut memories = tx.open_table(MEMORIES)?;
            if memories.len()? >= MAX_MEMORIES {
                return Ok(None);
            }
            let seq = next_seq(&mut tx.open_table(META)?)?;
            memories.insert(seq, to_json(&memory).as_slice())?;
            Ok(Some(seq))
        })?;
        added.ok_or(Error::MemoryFull { max: MAX_MEMORIES })
    }

    /// Gives memory `id` its vector; false when it was removed meanwhile.
    pub fn set_memory_embedding(&self, id: u64, embedding: Vec<f32>) -> Result<bool, Error> {
        self.write(|tx| {
            let mut memories = tx.open_table(MEMORIES)?;
            let Some(bytes) = memories.get(id)?.map(|v| v.value().to_vec()) else {
                return Ok(Ok(false));
            };
            // An unreadable row is reported, never overwritten.
            let mut memory: Memory = match from_json("memories", &bytes) {
                Ok(memory) => memory,
                Err(error) => return Ok(Err(error)),
            };
            memory.embedding = Some(embedding);
            memories.insert(id, to_json(&memory).as_slice())?;
            Ok(Ok(true))
        })?
    }

    /// Every memory, oldest first.
    pub fn memories(&self) -> Result<Vec<(u64, Memory)>, Error> {
        self.json_rows(MEMORIES, "memories")
    }

    pub fn remove_memory(&self, id: u64) -> Result<bool, Error> {
        self.write(|tx| Ok(tx.open_table(MEMORIES)?.remove(id)?.is_some()))
    }

    pub fn settings(&self, which: &str) -> Result<Option<String>, Error> {
        self.read(|tx| {
            let table = tx.open_table(SETTINGS)?;
            Ok(table.get(which)?.map(|v| v.value().to_string()))
        })
    }

    /// Writes the current settings, and the last good ones when given, at once.
    pub fn set_settings(&self, current: &str, last_good: Option<&str>) -> Result<(), Error> {
        self.write(|tx| {
            let mut table = tx.open_table(SETTINGS)?;
            table.insert("current", current)?;
            if let Some(good) = last_good {
                table.insert("last_good", good)?;
            }
            Ok(())
        })
    }

    /// Writes (or with `None` removes) one settings row: `trial`, `owner_code`.
    pub fn put_setting(&self, which: &str, value: Option<&str>) -> Result<(), Error> {
        self.write(|tx| {
            let mut table = tx.open_table(SETTINGS)?;
            match value {
                Some(value) => {
                    table.insert(which, value)?;
                }
                None => {
                    table.remove(which)?;
                }
            }
            Ok(())
        })
    }

    pub fn count(&self, name: &str) -> Result<u64, Error> {
        self.read(|tx| {
            let table = tx.open_table(META)?;
            Ok(table.get(name)?.map_or(0, |v| v.value()))
        })
    }

    pub fn put_count(&self, name: &str, value: u64) -> Result<(), Error> {
        self.write(|tx| {
            tx.open_table(META)?.insert(name, value)?;
            Ok(())
        })
    }

    pub fn bump(&self, name: &str) -> Result<u64, Error> {
        self.write(|tx| {
            let mut meta = tx.open_table(META)?;
            let next = meta.get(name)?.map_or(0, |v| v.value()) + 1;
            meta.insert(name, next)?;
            Ok(next)
        })
    }
}

fn next_seq(meta: &mut redb::Table<&str, u64>) -> Result<u64, redb::Error> {
    let next = meta.get("seq")?.map_or(0, |v| v.value()) + 1;
    meta.insert("seq", next)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use carapace_im::Content;

    fn text(id: &str, body: &str) -> Incoming {
        Incoming {
            channel: ChannelKind::Telegram,
            id: id.into(),
            chat: "42".into(),
            sender: "42".into(),
            message_id: String::new(),
            sender_name: "Ann".into(),
            content: Content::Text(body.into()),
        }
    }

    #[test]
    fn a_second_delivery_is_dropped_and_pending_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store
                .store_incoming(&[text("1", "a"), text("2", "b")], 100)
                .unwrap(),
            2
        );
        assert_eq!(
            store
                .store_incoming(&[text("2", "b"), text("3", "c")], 101)
                .unwrap(),
            1
        );
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let (seq, first) = store.next_pending().unwrap().unwrap();
        let first = first.unwrap();
        assert_eq!(first.content, Content::Text("a".into()));
        store
            .finish(
                seq,
                Answer {
                    replies: vec![OutboxEntry {
                        channel: ChannelKind::Telegram,
                        chat: "42".into(),
                        message: Outgoing::Text("A".into()),
                    }],
                    history: None,
                },
            )
            .unwrap();
        let second = store.next_pending().unwrap().unwrap().1.unwrap();
        assert_eq!(second.content, Content::Text("b".into()));
        let (out, entry) = store.next_outgoing().unwrap().unwrap();
        let entry = entry.unwrap();
        assert_eq!(entry.message, Outgoing::Text("A".into()));
        store.sent(out).unwrap();
        assert!(store.next_outgoing().unwrap().is_none());
        // Ids are forgotten after 48 h, not before.
        assert_eq!(
            store
                .store_incoming(&[text("1", "a")], 100 + SEEN_FOR_SECS - 1)
                .unwrap(),
            0
        );
    }

    #[test]
    fn a_code_binds_one_person() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .add_code(
                "code-0123456789",
                &Invite {
                    role: Role::Owner,
                    created: 1,
                },
            )
            .unwrap();
        let owner = User {
            channel: ChannelKind::Telegram,
            id: "42".into(),
            name: "Ann".into(),
            role: Role::Owner,
            since: 2,
        };
        store.redeem("code-0123456789", &owner).unwrap();
        assert!(store.codes().unwrap().is_empty());
        assert!(store.has_owner().unwrap());
        assert_eq!(
            store.user(ChannelKind::Telegram, "42").unwrap(),
            Some(owner)
        );
    }

    /// A store made by this agentd, reopened by one with `migrations`.
    fn reopen(dir: &Path, migrations: &'static [Migration]) -> Result<Store, Error> {
        Store::open_with(dir, migrations)
    }

    fn schema_of(store: &Store) -> (u64, u64) {
        store
            .read(|tx| {
                let meta = tx.open_table(META)?;
                let get = |key| meta.get(key).map(|v| v.map_or(0, |v| v.value()));
                Ok((get("schema")?, get("min_reader")?))
            })
            .unwrap()
    }

    #[test]
    fn an_update_expands_on_its_trial_and_contracts_once_committed() {
        use crate::store_schema::tests::THREE;
        let dir = tempfile::tempdir().unwrap();
        // An agentd of schema 1 made the data.
        let store = reopen(dir.path(), &[]).unwrap();
        store.put_count("kept", 7).unwrap();
        assert_eq!(schema_of(&store), (1, 1));
        drop(store);

        // The new release on its trial boot: the expansion runs, the contraction waits.
        let store = reopen(dir.path(), THREE).unwrap();
        assert_eq!(schema_of(&store), (2, 1));
        drop(store);
        // Rolled back: the old agentd opens what the trial left, and keeps its data.
        let store = reopen(dir.path(), &[]).unwrap();
        assert_eq!(store.count("kept").unwrap(), 7);
        drop(store);

        // The trial again, then committed: the rest runs, and min_reader rises.
        let store = reopen(dir.path(), THREE).unwrap();
        assert_eq!(store.migrate_committed().unwrap(), 2);
        assert_eq!(schema_of(&store), (4, 3));
        assert_eq!(store.migrate_committed().unwrap(), 0);
        drop(store);

        // A forced downgrade past the contraction: refused with what to do, data untouched.
        let error = reopen(dir.path(), &[]).err().unwrap();
        assert!(
            matches!(
                error,
                Error::StoreSchema {
                    found: 4,
                    min_reader: 3,
                    ours: 1
                }
            ),
            "{error}"
        );
        let store = reopen(dir.path(), THREE).unwrap();
        assert_eq!(store.count("kept").unwrap(), 7);
    }

    #[test]
    fn memories_are_kept_given_their_vector_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store
            .add_memory("the key is under the pot", 100, None)
            .unwrap();
        let second = store
            .add_memory("the router is in the closet", 101, Some(vec![0.6, 0.8]))
            .unwrap();
        // Ids come from the one counter, after anything else that took one.
        assert!(second > first);
        assert!(store.set_memory_embedding(first, vec![1.0, 0.0]).unwrap());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.memories().unwrap(),
            [
                (
                    first,
                    Memory {
                        text: "the key is under the pot".into(),
                        at: 100,
                        embedding: Some(vec![1.0, 0.0]),
                    }
                ),
                (
                    second,
                    Memory {
                        text: "the router is in the closet".into(),
                        at: 101,
                        embedding: Some(vec![0.6, 0.8]),
                    }
                ),
            ]
        );
        assert!(store.remove_memory(first).unwrap());
        assert!(!store.remove_memory(first).unwrap());
        assert!(!store.set_memory_embedding(first, vec![0.0, 1.0]).unwrap());
        assert_eq!(store.memories().unwrap().len(), 1);
    }

    #[test]
    fn a_memory_too_long_or_one_too_many_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let long = "x".repeat(MAX_MEMORY_CHARS + 1);
        let error = store.add_memory(&long, 1, None).unwrap_err();
        assert!(
            matches!(error, Error::MemoryTooLong { chars, .. } if chars == MAX_MEMORY_CHARS + 1)
        );
        assert!(
            error.to_string().contains("at most 2000 characters"),
            "{error}"
        );
        // Characters, not bytes: 2,000 of a 3-byte character fit.
        store
            .add_memory(&"鍵".repeat(MAX_MEMORY_CHARS), 1, None)
            .unwrap();
        assert!(store.memories().unwrap().len() == 1);

        // Filling the table through add_memory would take 10,000 commits; the cap is checked
        // against the table's length, so rows written directly count the same.
        store
            .write(|tx| {
                let mut memories = tx.open_table(MEMORIES)?;
                for id in 1_000_000..1_000_000 + MAX_MEMORIES - 1 {
                    memories.insert(id, b"{}".as_slice())?;
                }
                Ok(())
            })
            .unwrap();
        let error = store.add_memory("one more", 2, None).unwrap_err();
        assert!(matches!(error, Error::MemoryFull { max: MAX_MEMORIES }));
        assert!(error.to_string().contains("/forget_memory"), "{error}");
    }

    #[test]
    fn a_schema_1_store_gains_the_memories_table_and_older_agentd_still_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = reopen(dir.path(), &[]).unwrap();
        store.add_fact("the cat is Tom").unwrap();
        assert_eq!(schema_of(&store), (1, 1));
        assert!(
            store
                .read(|tx| Ok(tx.open_table(MEMORIES).is_err()))
                .unwrap(),
            "a schema-1 store has no memories table"
        );
        drop(store);

        // This agentd: the expansion runs at open, trial or not.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(schema_of(&store), (2, 1));
        let id = store
            .add_memory("the key is under the pot", 5, None)
            .unwrap();
        assert_eq!(store.memories().unwrap()[0].0, id);
        drop(store);

        // Rolled back to schema 1: it opens the data (min_reader 1) and keeps what it knows.
        let store = reopen(dir.path(), &[]).unwrap();
        assert_eq!(store.facts().unwrap()[0].1, "the cat is Tom");
        drop(store);
        // And forward again: nothing to migrate, the memory is still there.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.memories().unwrap().len(), 1);
    }

    #[test]
    fn a_fresh_store_has_the_memories_table_at_schema_2() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(schema_of(&store), (2, 1));
        assert!(store.memories().unwrap().is_empty());
    }
}
