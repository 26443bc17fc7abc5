//! netd, run by PID 1 as its own uid with CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_NET_RAW
//! and CAP_SYS_TIME. It says READY=1 once the clock is at least the last known time and the
//! DNS stub answers, so agentd (which starts after it) can resolve and check certificates.
//! Links come up and leases arrive after that, in their own time.
//!
//! Every change of configuration happens here, in the main loop: SIGHUP (the files changed),
//! and the control socket's Wi-Fi trials (control.rs, trial.rs) with their deadlines. Both
//! go the same way: load the files, hand the result to the resolver, the Wi-Fi loop and the
//! coordinator.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use board_support::netd_control::{self, Reply, Request};
use board_support::notify::Message;
use board_support::notify_fd::NotifyFd;
use carapace_netpolicy::NetdConfig;
use carapace_netpolicy::config::WifiNetwork;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use carapace_netd::clock::{self, Floor};
use carapace_netd::control::{self, Answer, Ask, ControlServer};
use carapace_netd::coordinator::Coordinator;
use carapace_netd::dhcp::LinkEvent;
use carapace_netd::dns;
use carapace_netd::error::{Error, Result};
use carapace_netd::firewall::{Firewall, NetdSets, REFRESH_INTERVAL};
use carapace_netd::link_setup;
use carapace_netd::links;
use carapace_netd::policy::{NetdPolicy, NftSink};
use carapace_netd::settings::{self, Paths};
use carapace_netd::state::Shared;
use carapace_netd::status::{self, StatusServer};
use carapace_netd::time_sync::TimeSync;
use carapace_netd::trial::Trials;
use carapace_netd::wifi::station::Wifi;

/// The box's one resolver; /etc/resolv.conf names it.
const STUB_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)), 53);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fatal: {err}");
            ExitCode::FAILURE
        }
    }
}

fn dir_from_env(key: &str, default: &str) -> PathBuf {
    std::env::var_os(key).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

async fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let controllers = control::controllers(&args)?;
    let signal_error = |signal| move |source| Error::Signal { signal, source };
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error("SIGTERM"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error("SIGINT"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error("SIGHUP"))?;
    let notify = NotifyFd::from_env()?;
    let state_dir = dir_from_env("STATE_DIRECTORY", "/data/netd");
    let runtime_dir = dir_from_env("RUNTIME_DIRECTORY", "/run/netd");
    let shared = Shared::default();

    // The clock before anything else: agentd's TLS needs a time past the certificates' start.
    let floor = Floor::load(&state_dir);
    let restored = match clock::restore(floor.time()) {
        Ok(Some(to)) => format!(
            "set forward to {} (the last known time)",
            clock::unix_secs(to)
        ),
        Ok(None) => "already past the last known time".to_owned(),
        Err(err) => format!("not restored: {err}"),
    };
    println!("time: clock {restored}");
    shared.lock().time.restored = restored;

    let paths = Paths::new(&state_dir);
    // A trial the netd before this one left pending ends here, before the files are read.
    let mut trials = Trials::new(&paths);
    let previous_wifi = match trials.recover(Instant::now()) {
        Ok(tried) => tried,
        Err(err) => {
            eprintln!("wifi trial: going back at start: {err}; trying again shortly");
            None
        }
    };
    if let Some(report) = trials.report() {
        println!("{}", report.line());
        shared.lock().last_trial = Some(report.clone());
    }
    let loaded = settings::load(&paths);
    if let Some(problem) = &loaded.problem {
        eprintln!("config: {problem}");
    }
    let config = loaded.config;
    {
        let mut state = shared.lock();
        state.config_error = loaded.problem;
        state.allowlist = allowlist_lines(&config);
    }

    let firewall = Firewall::new(PathBuf::from(carapace_netpolicy::NFT_PROGRAM));
    // Without the base policy the box would have no egress filter: bring no link up.
    let firewall_ok = match firewall.list().await {
        Ok(_) => true,
        Err(err) => {
            let problem = format!("the base policy is not in force ({err}); no link is brought up");
            eprintln!("firewall: {problem}");
            shared.lock().firewall_error = Some(problem);
            false
        }
    };

    let (upstreams_tx, upstreams_rx) = watch::channel(Vec::new());
    let (time_tx, time_rx) = watch::channel(Vec::new());
    let stub = dns::Stub::new(
        Arc::new(NetdPolicy::new(&config)),
        NftSink::new(firewall.clone()),
        upstreams_rx,
    );
    let stub_udp = tokio::net::UdpSocket::bind(STUB_ADDRESS)
        .await
        .map_err(|source| Error::Bind {
            what: format!("the DNS stub on udp {STUB_ADDRESS}"),
            source,
        })?;
    let stub_tcp = tokio::net::TcpListener::bind(STUB_ADDRESS)
        .await
        .map_err(|source| Error::Bind {
            what: format!("the DNS stub on tcp {STUB_ADDRESS}"),
            source,
        })?;
    let stub = Arc::new(stub);
    tokio::spawn(dns::serve(stub_udp, stub_tcp, stub.clone()));
    println!(
        "dns: stub on {STUB_ADDRESS} allowlist={}",
        config.allow.len()
    );

    let status_server = StatusServer::bind(&runtime_dir.join(status::SOCKET_NAME))?;
    println!("status: socket={}", status_server.path().display());
    let control_server = ControlServer::bind(
        &runtime_dir.join(netd_control::SOCKET_NAME),
        controllers.clone(),
    )?;
    let controller_list: Vec<String> = controllers.iter().map(u32::to_string).collect();
    println!(
        "control: socket={} controllers={}",
        control_server.path().display(),
        controller_list.join(",")
    );

    let (events_tx, mut events_rx) = mpsc::channel::<LinkEvent>(16);
    let handle = links::connect()?;
    if firewall_ok {
        start_links(&handle, &config, &shared, &events_tx).await;
    }

    tokio::spawn(
        TimeSync {
            servers: time_rx,
            floor: floor.time(),
            state_dir: state_dir.clone(),
            shared: shared.clone(),
        }
        .run(),
    );

    // Wi-Fi through iwd: the station loop waits for the bus and iwd in its own time.
    let (wifi_config, wifi_config_rx) = watch::channel(config.clone());
    let (wifi_applied, wifi_applied_rx) = watch::channel(Vec::new());
    if firewall_ok {
        tokio::spawn(
            Wifi {
                config: wifi_config_rx,
                handle: handle.clone(),
                shared: shared.clone(),
                events: events_tx.clone(),
                applied: wifi_applied,
                previous: previous_wifi,
            }
            .run(),
        );
    }
    let (asks_tx, mut asks_rx) = mpsc::channel::<Ask>(4);
    tokio::spawn(control_server.serve(asks_tx, wifi_applied_rx));

    let mut running = Running {
        paths,
        stub: stub.clone(),
        firewall: firewall.clone(),
        shared: shared.clone(),
        wifi_config,
        coordinator: Coordinator {
            shared: shared.clone(),
            sets: NetdSets::new(firewall.clone()),
            upstreams: upstreams_tx,
            time_servers: time_tx,
            leases: BTreeMap::new(),
            config,
        },
    };
    running.coordinator.publish().await;

    if let Some(pipe) = &notify {
        pipe.send(&Message::Ready).map_err(Error::Notify)?;
    }
    println!("ready");

    let collect = || {
        let shared = shared.clone();
        let firewall = firewall.clone();
        let handle = handle.clone();
        let stub = stub.clone();
        async move { status::collect(&shared, &firewall, &handle, stub.stats()).await }
    };
    let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
    refresh.tick().await;
    let stopped_by = loop {
        tokio::select! {
            _ = refresh.tick() => running.coordinator.publish().await,
            never = status_server.serve(collect) => match never {},
            Some(event) = events_rx.recv() => running.coordinator.on_link_event(event).await,
            _ = hangup.recv() => {
                running.reload().await;
            }
            Some((request, answer)) = asks_rx.recv() => {
                let answered = running.control(&mut trials, request).await;
                let _ = answer.send(answered);
            }
            () = until(trials.deadline()) => {
                match trials.expire(Instant::now()) {
                    Ok(true) => {
                        running.note_trial(&trials);
                        running.reload().await;
                    }
                    Ok(false) => {}
                    Err(err) => eprintln!(
                        "wifi trial: going back: {err}; trying again in {} s",
                        carapace_netd::trial::RETRY_REVERT.as_secs()
                    ),
                }
            }
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
        }
    };
    if let Err(err) = clock::save(&state_dir) {
        eprintln!("time: {err}");
    }
    println!("stopping signal={stopped_by}");
    Ok(())
}

/// Sleeps until `deadline`; never returns without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// What a configuration change reaches.
struct Running {
    paths: Paths,
    stub: Arc<dns::Stub<NetdPolicy, NftSink>>,
    firewall: Firewall,
    shared: Shared,
    wifi_config: watch::Sender<NetdConfig>,
    coordinator: Coordinator,
}

impl Running {
    /// Loads the files and puts them in force: the resolver's allowlist, the Wi-Fi
    /// networks, the resolvers and time servers. Returns the Wi-Fi networks now in force.
    async fn reload(&mut self) -> Vec<WifiNetwork> {
        let loaded = settings::load(&self.paths);
        if let Some(problem) = &loaded.problem {
            eprintln!("config: {problem}");
        }
        self.stub
            .set_policy(Arc::new(NetdPolicy::new(&loaded.config)));
        {
            let mut state = self.shared.lock();
            state.config_error = loaded.problem;
            state.allowlist = allowlist_lines(&loaded.config);
        }
        println!("config: reloaded allowlist={}", loaded.config.allow.len());
        let wifi = loaded.config.wifi.clone();
        self.wifi_config.send_replace(loaded.config.clone());
        self.coordinator.config = loaded.config;
        self.coordinator.publish().await;
        wifi
    }

    /// One request from the control socket.
    async fn control(&mut self, trials: &mut Trials, request: Request) -> Answer {
        let closes = matches!(request, Request::Disallow { .. });
        let outcome = match request {
            Request::WifiTrial {
                networks,
                revert_after_s,
            } => trials
                .start(
                    &networks,
                    Duration::from_secs(revert_after_s),
                    Instant::now(),
                )
                .map(|()| true),
            Request::Commit {} => trials.commit().map(|()| {
                if let Err(err) = settings::save_owner_as_last_good(&self.paths) {
                    eprintln!("config: {err}");
                }
                false
            }),
            Request::Revert {} => trials.revert().map(|()| true),
            Request::Allow { name, port } => allow_entry(&name, port).and_then(|entry| {
                let added = trials.allow(entry)?;
                if added {
                    println!("config: the owner allowed {name} port {port}");
                }
                Ok(added)
            }),
            Request::Disallow { name, port } => trials.disallow(&name, port).inspect(|&removed| {
                if removed {
                    println!("config: the owner took back {name} port {port}");
                }
            }),
        };
        match outcome {
            Ok(changed) => {
                self.note_trial(trials);
                let settle = if changed {
                    Some(self.reload().await)
                } else {
                    None
                };
                if changed && closes {
                    self.close_allowed().await;
                }
                Answer {
                    reply: Reply::ok(),
                    settle,
                }
            }
            Err(err) => Answer {
                reply: Reply::error(err.to_string()),
                settle: None,
            },
        }
    }

    /// Closes what the allow sets opened, once the new allowlist is in force: the sets and the
    /// DNS cache are emptied together, so each name still allowed opens again at its next
    /// lookup (a connection being opened at that very moment may fail once; established ones
    /// go on).
    async fn close_allowed(&self) {
        match self.firewall.close_allowed().await {
            Ok(()) => println!("firewall: closed what the allow sets held"),
            Err(err) => eprintln!("firewall: {err}"),
        }
        self.stub.clear_cache();
    }

    /// The trial's outcome on the console and the status socket.
    fn note_trial(&self, trials: &Trials) {
        if let Some(report) = trials.report() {
            println!("{}", report.line());
            self.shared.lock().last_trial = Some(report.clone());
        }
    }
}

/// An exact host name (no wildcard: the owner adds one service) at one port.
fn allow_entry(name: &str, port: u16) -> Result<carapace_netpolicy::AllowEntry, Error> {
    let refused = |problem: String| Error::AllowEntry {
        name: name.to_string(),
        problem,
    };
    let pattern: carapace_netpolicy::NamePattern =
        name.parse().map_err(|err| refused(format!("{err}")))?;
    if matches!(pattern, carapace_netpolicy::NamePattern::Below(_)) {
        return Err(refused("give one host name, not a wildcard".into()));
    }
    carapace_netpolicy::AllowEntry::new(pattern, &[port]).map_err(|err| refused(err.to_string()))
}

/// Brings every ethernet link up with its configuration (DHCPv4 and SLAAC when it has none).
async fn start_links(
    handle: &rtnetlink::Handle,
    config: &NetdConfig,
    shared: &Shared,
    events: &mpsc::Sender<LinkEvent>,
) {
    let found = match links::ethernet_links(handle).await {
        Ok(found) => found,
        Err(err) => {
            eprintln!("links: {err}");
            return;
        }
    };
    for link in found {
        link_setup::start(handle, link, config, shared, events).await;
    }
}

/// The allowlist as the status socket shows it: `name ports=443,8443`.
fn allowlist_lines(config: &NetdConfig) -> Vec<String> {
    config
        .allow
        .iter()
        .map(|entry| {
            let ports: Vec<String> = entry.ports.iter().map(u16::to_string).collect();
            format!("{} ports={}", entry.name, ports.join(","))
        })
        .collect()
}
