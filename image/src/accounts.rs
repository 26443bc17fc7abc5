//! /etc/passwd and /etc/group from the service table. PID 1 needs neither (it sets uids by
//! number), but dbus-daemon resolves every client's uid to a user and its groups before it lets
//! the client on the bus, and its policy names users: without these files no one may connect.
//! Each uid is named after the first service that runs as it; nobody has a shell or a password.

use crate::recipe::Recipe;

pub const PASSWD_PATH: &str = "/etc/passwd";
pub const GROUP_PATH: &str = "/etc/group";

/// `name:x:uid:gid::/nonexistent:/usr/sbin/nologin` per uid, in table order.
pub fn passwd(recipe: &Recipe) -> String {
    let mut text = String::new();
    let mut seen = Vec::new();
    for service in &recipe.services {
        if seen.contains(&service.uid) {
            continue;
        }
        seen.push(service.uid);
        text.push_str(&format!(
            "{}:x:{}:{}::/nonexistent:/usr/sbin/nologin\n",
            service.name, service.uid, service.gid
        ));
    }
    text
}

/// `name:x:gid:` per gid, in table order. A group takes the name of the user with the same
/// number, else `gid<number>`, so two groups never share a name.
pub fn group(recipe: &Recipe) -> String {
    let mut text = String::new();
    let mut seen = Vec::new();
    for service in &recipe.services {
        if seen.contains(&service.gid) {
            continue;
        }
        seen.push(service.gid);
        let name = recipe
            .services
            .iter()
            .find(|s| s.uid == service.gid)
            .map_or_else(|| format!("gid{}", service.gid), |s| s.name.clone());
        text.push_str(&format!("{name}:x:{}:\n", service.gid));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
name = "t"
board = "x86-64"
hostname = "carapace"
[debian]
suite = "trixie"
packages = []
[[service]]
name = "agentd"
exec = ["/usr/bin/agentd"]
uid = 1000
gid = 1000
memory_max = 268435456
ready = true
[[service]]
name = "health"
exec = ["/usr/bin/health"]
uid = 1101
gid = 1000
memory_max = 33554432
[[service]]
name = "again"
exec = ["/usr/bin/again"]
uid = 1000
gid = 1200
memory_max = 33554432
"#;

    #[test]
    fn one_user_per_uid_named_after_its_first_service() {
        let recipe = Recipe::parse(TABLE).unwrap();
        assert_eq!(
            passwd(&recipe),
            "agentd:x:1000:1000::/nonexistent:/usr/sbin/nologin\n\
             health:x:1101:1000::/nonexistent:/usr/sbin/nologin\n"
        );
    }

    #[test]
    fn groups_take_the_user_name_of_their_number_or_a_numbered_name() {
        let recipe = Recipe::parse(TABLE).unwrap();
        assert_eq!(group(&recipe), "agentd:x:1000:\ngid1200:x:1200:\n");
    }
}
