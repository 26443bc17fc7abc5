//! netd's hands on the kernel's links (links.rs), against the real kernel: a thread moves
//! into a network namespace of its own (setns affects only that thread and what it
//! spawns) holding a veth pair, and drives it through rtnetlink. Needs root, as
//! `make test` has; without it the test fails and says so.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use carapace_netd::links;
use carapace_netpolicy::config::{InterfaceConfig, Ipv4Cidr, Ipv4Mode, Ipv6Mode};

/// Runs `test` on a thread moved into a new, empty network namespace (removed afterwards).
fn in_new_netns(name: &str, test: impl FnOnce() + Send + 'static) {
    let netns = format!("carapace-links-{name}-{}", std::process::id());
    let status = Command::new("ip").args(["netns", "add", &netns]).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "ip netns add {netns} failed: run as root (make test), with iproute2 (make deps)"
    );
    let file = std::fs::File::open(format!("/run/netns/{netns}")).expect("the namespace");
    let outcome = std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns into the test namespace");
        test();
    })
    .join();
    let _ = Command::new("ip").args(["netns", "del", &netns]).status();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn ip(args: &str) -> String {
    let output = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("run ip: {e}; make deps installs iproute2"));
    assert!(
        output.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn a_static_configuration_puts_its_address_and_default_route_on_the_link() {
    in_new_netns("static", || {
        // A veth pair: this kernel may lack the dummy driver; both ends are ethernet.
        ip("link add d0 type veth peer name d0p");
        ip("link set d0p up");
        runtime().block_on(async {
            let handle = links::connect().expect("netlink");
            let found = links::ethernet_links(&handle).await.expect("links");
            let mut names: Vec<&str> = found.iter().map(|l| l.name.as_str()).collect();
            names.sort_unstable();
            assert_eq!(names, ["d0", "d0p"], "loopback is not ethernet");
            let link = found.iter().find(|l| l.name == "d0").expect("d0").clone();
            links::bring_up(&handle, &link).await.expect("up");
            let interface = InterfaceConfig {
                name: "d0".to_owned(),
                ipv4: Ipv4Mode::Static,
                address: Some(Ipv4Cidr {
                    address: Ipv4Addr::new(192, 0, 2, 5),
                    prefix_len: 24,
                }),
                gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
                ipv6: Ipv6Mode::Off,
            };
            links::apply_static(&handle, &link, &interface)
                .await
                .expect("static");
            let addresses = links::addresses(&handle, link.index)
                .await
                .expect("addresses");
            assert!(
                addresses.contains(&(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5)), 24)),
                "{addresses:?}"
            );
            let routes = ip("-4 route show default");
            assert!(
                routes.starts_with("default via 192.0.2.1 dev d0"),
                "{routes}"
            );

            // A lost lease: the address goes, and the kernel takes its routes with it.
            links::remove_address(&handle, link.index, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5)))
                .await
                .expect("remove");
            let addresses = links::addresses(&handle, link.index)
                .await
                .expect("addresses");
            assert!(!addresses.iter().any(|(a, _)| a.is_ipv4()), "{addresses:?}");
            assert_eq!(ip("-4 route show default"), "");
        });
    });
}

#[test]
fn ipv6_off_and_slaac_set_the_links_sysctls() {
    in_new_netns("ipv6", || {
        ip("link add d1 type veth peer name d1p");
        let read = |key: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/d1/{key}"))
                .expect("sysctl")
                .trim()
                .to_owned()
        };
        links::set_ipv6("d1", false).expect("off");
        assert_eq!(read("disable_ipv6"), "1");
        links::set_ipv6("d1", true).expect("slaac");
        assert_eq!(
            (read("disable_ipv6"), read("accept_ra"), read("autoconf")),
            ("0".to_owned(), "1".to_owned(), "1".to_owned())
        );
    });
}
