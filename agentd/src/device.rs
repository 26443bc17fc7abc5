//! What the box can say about itself, for `/status` and the `device_status` tool: the image,
//! the slot, uptime, memory, temperature, the chain of trust (Secure Boot, lockdown, the TPM,
//! whether /data is encrypted), and netd's view of the network and the firewall
//! (its status socket, which any local service may read).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use board_support::image_info::{IMAGE_INFO_PATH, ImageInfo};
use board_support::trust_state::TrustState;

/// netd's status socket.
pub const NETD_STATUS: &str = "/run/netd/status.sock";
const NETD_TIMEOUT: Duration = Duration::from_secs(2);

/// The facts, as JSON for the model and as lines for `/status`.
pub async fn status(identity: &str) -> Value {
    let image = std::fs::read_to_string(IMAGE_INFO_PATH)
        .ok()
        .and_then(|text| ImageInfo::parse(&text).ok());
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let slot = cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix("carapace.slot="))
        .unwrap_or("unknown")
        .to_string();
    let uptime_s = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| s as u64);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = |key: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    json!({
        "identity": identity,
        "image": image.as_ref().map(|i| json!({
            "name": i.name, "board": i.board, "version": i.version, "build_id": i.build_id,
        })),
        "slot": slot,
        "uptime_s": uptime_s,
        "memory_kib": {"total": mem("MemTotal"), "available": mem("MemAvailable")},
        "temperature_c": temperatures(Path::new("/sys/class/thermal")),
        "network": netd_status(Path::new(NETD_STATUS)).await,
        "trust": trust(TrustState::read()),
    })
}

/// What verified this boot and how /data is kept (the disk helper's record), or that the box
/// has no record.
fn trust(state: Option<TrustState>) -> Value {
    match state {
        Some(state) => json!({
            "secure_boot": state.secure_boot,
            "lockdown": state.lockdown,
            "tpm": state.tpm,
            "data": state.data.word(),
            "data_summary": state.data.describe(),
        }),
        None => json!({"error": "no record of this boot's chain of trust"}),
    }
}

/// Each thermal zone's temperature in °C.
fn temperatures(dir: &Path) -> Value {
    let mut zones = serde_json::Map::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Value::Object(zones);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("thermal_zone") {
            continue;
        }
        let kind = std::fs::read_to_string(path.join("type")).unwrap_or(name);
        if let Some(milli) = std::fs::read_to_string(path.join("temp"))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
        {
            zones.insert(kind.trim().to_string(), json!(milli as f64 / 1000.0));
        }
    }
    Value::Object(zones)
}

/// netd's status document, or why there is none.
async fn netd_status(socket: &Path) -> Value {
    let read = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        let mut text = Vec::new();
        stream.read_to_end(&mut text).await?;
        Ok::<_, std::io::Error>(text)
    };
    match tokio::time::timeout(NETD_TIMEOUT, read).await {
        Ok(Ok(text)) => serde_json::from_slice(&text)
            .unwrap_or_else(|e| json!({"error": format!("netd's status: {e}")})),
        Ok(Err(error)) => json!({"error": format!("netd's status socket: {error}")}),
        Err(_) => json!({"error": "netd's status socket did not answer within 2 s"}),
    }
}

/// The status as a few lines for the chat.
pub fn summary(status: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(image) = status.get("image").filter(|i| !i.is_null()) {
        lines.push(format!(
            "{} {} (build {}), slot {}",
            image["name"].as_str().unwrap_or("?"),
            image["version"].as_str().unwrap_or("?"),
            image["build_id"].as_str().unwrap_or("?"),
            status["slot"].as_str().unwrap_or("?"),
        ));
    }
    if let Some(up) = status["uptime_s"].as_u64() {
        lines.push(format!("up {}h {:02}m", up / 3600, up / 60 % 60));
    }
    let memory = &status["memory_kib"];
    if let (Some(total), Some(available)) = (memory["total"].as_u64(), memory["available"].as_u64())
    {
        lines.push(format!(
            "memory: {} MiB free of {} MiB",
            available / 1024,
            total / 1024
        ));
    }
    if let Some(zones) = status["temperature_c"].as_object() {
        for (zone, celsius) in zones {
            lines.push(format!("{zone}: {celsius} °C"));
        }
    }
    let network = &status["network"];
    if let Some(error) = network.get("error") {
        lines.push(format!("network: {}", error.as_str().unwrap_or("?")));
    } else if let Some(links) = network.get("links").and_then(Value::as_array) {
        for link in links {
            lines.push(format!(
                "{}: {}",
                link["name"].as_str().unwrap_or("?"),
                link["addresses"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ));
        }
    }
    let trust = &status["trust"];
    if let Some(secure_boot) = trust["secure_boot"].as_str() {
        lines.push(format!(
            "secure boot: {secure_boot}, kernel lockdown: {}, TPM: {}",
            trust["lockdown"].as_str().unwrap_or("?"),
            if trust["tpm"].as_bool() == Some(true) {
                "yes"
            } else {
                "none"
            }
        ));
        lines.push(format!(
            "/data: {}",
            trust["data_summary"].as_str().unwrap_or("?")
        ));
    }
    lines.push(format!(
        "identity {}",
        status["identity"].as_str().unwrap_or("?")
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use board_support::trust_state::DataProtection;

    #[test]
    fn the_summary_says_what_verified_the_boot_and_how_data_is_kept() {
        let state = TrustState {
            secure_boot: "on".into(),
            lockdown: "integrity".into(),
            tpm: false,
            data: DataProtection::PlainNoTpm,
        };
        let status = json!({"identity": "k", "trust": trust(Some(state))});
        let text = summary(&status);
        assert!(
            text.contains("secure boot: on, kernel lockdown: integrity, TPM: none\n/data: not encrypted: this box has no TPM 2.0"),
            "{text}"
        );
        let none = summary(&json!({"identity": "k", "trust": trust(None)}));
        assert!(!none.contains("secure boot"), "{none}");
    }
}
