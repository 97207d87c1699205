//! Where the directory context goes in an OCSF event (README "Directory
//! context"): on the actor's `user` and on the event's own `user` (the user
//! an activity acts on) the OCSF `user` attributes: `full_name`,
//! `email_addr`, `groups[]` (`uid`, `name`, `type` = direct or scim),
//! `type_id`/`type` (2 Admin for an
//! admin-class role or group, else 1 User; keys and services keep theirs)
//! and `org` (`uid`, `name`). What OCSF has no attribute for goes to
//! `unmapped.claudit.directory.actor` / `.user`: the organization role,
//! custom roles with their permissions, `member_since`, and `departed: true`
//! with `departed_time` when the user had left before the activity.

use super::envelope::is_email;
use super::node::{Node, Obj};
use crate::directory::{DirectoryContext, Identity};

/// Places `context` on the actor's user and the event's user (when they
/// name the same person as the context), and its extras in `claudit`.
pub fn place<'a>(
    context: &'a DirectoryContext,
    actor_user: Option<&mut Obj<'a>>,
    event_user: Option<&mut Obj<'a>>,
    claudit: &mut Obj<'a>,
) {
    let mut extras = Obj::new();
    if let (Some(id), Some(user)) = (&context.actor, actor_user)
        && names(user, id)
    {
        place_user(id, user);
        extras.set("actor", extra(id));
    }
    if let Some(user) = event_user {
        match (&context.user, &context.actor) {
            (Some(id), _) if names(user, id) => {
                place_user(id, user);
                extras.set("user", extra(id));
            }
            // The actor acting on their own account.
            (_, Some(id)) if names(user, id) => place_user(id, user),
            _ => {}
        }
    }
    if !extras.is_empty() {
        claudit.set("directory", extras);
    }
}

/// Whether an OCSF user object is this identity (by uid or e-mail).
fn names(user: &Obj, id: &Identity) -> bool {
    let text = |k| user.get(k).and_then(Node::as_borrowed_str);
    text("uid").is_some_and(|uid| uid == &*id.user_id)
        || id.email.as_deref().is_some_and(|email| {
            text("email_addr")
                .or_else(|| text("name"))
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
}

fn place_user<'a>(id: &'a Identity, user: &mut Obj<'a>) {
    if !user.contains_key("uid") {
        user.set("uid", &*id.user_id);
    }
    user.set_opt("full_name", id.name.as_deref());
    if let Some(email) = id.email.as_deref() {
        if !user.contains_key("email_addr") && is_email(email) {
            user.set("email_addr", email);
        }
        if !user.contains_key("name") {
            user.set("name", email);
        }
    }
    if !id.groups.is_empty() {
        let groups: Vec<Node<'a>> = id
            .groups
            .iter()
            .map(|g| {
                let mut group = Obj::new().with("uid", &*g.uid);
                group.set_opt("name", g.name.as_deref());
                group.set_opt("type", g.source_type.as_deref());
                Node::from(group)
            })
            .collect();
        user.set("groups", groups);
    }
    // A person's account: User or Admin. Keys, services and systems keep
    // the type their actor variant gave them.
    let is_person = matches!(user.get("type_id"), None | Some(Node::Int(0 | 1)));
    if is_person {
        let (type_id, caption) = if id.admin {
            (2u8, "Admin")
        } else {
            (1, "User")
        };
        user.set("type_id", type_id);
        user.set("type", caption);
    }
    if let Some(org) = &id.org {
        let o = user.object_mut("org");
        if !o.contains_key("uid") {
            o.set("uid", &*org.uid);
        }
        o.set_opt("name", org.name.as_deref());
    }
}

/// What OCSF has no place for.
fn extra(id: &Identity) -> Obj<'_> {
    let mut e = Obj::new().with("uid", &*id.user_id);
    if let Some(org) = &id.org {
        e.set("org_uid", &*org.uid);
    }
    e.set_opt("organization_role", id.organization_role.as_deref());
    e.set("admin", id.admin);
    if !id.roles.is_empty() {
        let roles: Vec<Node<'_>> = id
            .roles
            .iter()
            .map(|r| {
                let mut role = Obj::new().with("uid", &*r.uid);
                role.set_opt("name", r.name.as_deref());
                if !r.permissions.is_empty() {
                    role.set(
                        "permissions",
                        r.permissions
                            .iter()
                            .map(|p| Node::Str(p))
                            .collect::<Vec<_>>(),
                    );
                }
                Node::from(role)
            })
            .collect();
        e.set("roles", roles);
    }
    e.set_opt("member_since", id.member_since);
    if id.departed {
        e.set("departed", true);
        e.set_opt("departed_time", id.departed_time);
    }
    e
}
