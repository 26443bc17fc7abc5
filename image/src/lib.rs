//! The Carapace image builder and runner (the `carapace` CLI), usable as a library by the
//! whole-system tests.

pub mod accounts;
pub mod apt;
pub mod board;
pub mod bsp;
pub mod build;
pub mod build_inputs;
pub mod bundle;
pub mod cache_lock;
pub mod cargo_build;
pub mod cpio;
pub mod deb_cache;
pub mod elf_deps;
pub mod error;
pub mod esp;
pub mod flash;
pub mod fsutil;
pub mod gpt_writer;
pub mod ids;
pub mod initramfs;
pub mod keygen;
pub mod kmod;
pub mod layout;
pub mod lock;
pub mod models;
pub mod network;
pub mod owner;
pub mod package_data;
pub mod packages;
pub mod publish;
pub mod qemu;
pub mod qmp;
pub mod recipe;
pub mod release_dir;
pub mod rootfs;
pub mod run;
pub mod sbom;
pub mod slot_files;
pub mod tools;
pub mod update_size;
pub mod verity;

pub use error::{Error, Result};
