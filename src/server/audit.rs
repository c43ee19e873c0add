//! The audit trail: `record` writes who changed what (each changed field as "from -> to",
//! in words: `audit_words`) after a mutation succeeds, and the `Audit` service reads it back.

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::context::Context;
use crate::domain::auth::Caller;
use crate::proto::{self, audit_server::Audit};
use crate::store::NewAuditEntry;
use crate::wire;

/// Fields left out of the changes: bookkeeping that moves with every change.
const IGNORED_FIELDS: &[&str] = &["meta", "updated_at", "history"];

/// The top-level fields of a message as its pretty `Debug` form shows them, in order. Works
/// for every generated message, so no record type needs its own audit code.
fn fields(value: &impl Debug) -> Vec<(String, String)> {
    let text = format!("{value:#?}");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines().skip(1) {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if indent == 4 {
            if let Some((name, rest)) = trimmed.split_once(": ") {
                fields.push((name.to_owned(), rest.trim_end_matches(',').to_owned()));
                continue;
            }
        }
        if indent > 4 || (indent == 4 && !trimmed.is_empty()) {
            // A nested value's lines, folded into one.
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(trimmed.trim_end_matches(','));
            }
        }
    }
    fields.retain(|(name, _)| !IGNORED_FIELDS.contains(&name.as_str()));
    for (_, value) in &mut fields {
        *value = super::audit_words::words(value);
    }
    fields
}

/// One "field: from -> to" line per field that differs.
pub fn changes<T: Debug>(before: Option<&T>, after: Option<&T>) -> String {
    let old: BTreeMap<String, String> =
        before.map(fields).unwrap_or_default().into_iter().collect();
    let new = after.map(fields).unwrap_or_default();
    let mut lines = Vec::new();
    for (name, value) in &new {
        match old.get(name) {
            Some(was) if was == value => {}
            Some(was) => lines.push(format!("{name}: {was} -> {value}")),
            None => lines.push(format!("{name}: -> {value}")),
        }
    }
    if after.is_none() {
        for (name, was) in &old {
            lines.push(format!("{name}: {was} ->"));
        }
    }
    lines.join("\n")
}

/// What a handler says about one mutation it made.
pub struct Change<'a, T> {
    /// "Service.Method".
    pub action: String,
    pub entity: &'static str,
    pub entity_id: i64,
    pub before: Option<&'a T>,
    pub after: Option<&'a T>,
    /// A change the records cannot show (a password was set), said in words.
    pub also: Option<&'static str>,
}

/// Writes one audit entry. The change itself is already committed; a failure to write the
/// entry is logged loudly rather than turned into a failure of the change.
pub async fn record<T: Debug>(context: &Context, caller: Option<&Caller>, change: Change<'_, T>) {
    let entry = NewAuditEntry {
        at: Utc::now(),
        actor: caller.map(|c| c.username.clone()).unwrap_or_default(),
        role: caller
            .map(|c| c.role.as_str().to_owned())
            .unwrap_or_default(),
        peer: caller.map(|c| c.peer.clone()).unwrap_or_default(),
        action: change.action.clone(),
        entity: change.entity.to_owned(),
        entity_id: change.entity_id,
        changes: {
            let mut text = changes(change.before, change.after);
            if let Some(also) = change.also {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(also);
            }
            text
        },
    };
    if let Err(e) = context.blocking(move |s| s.record_audit(entry)).await {
        tracing::error!(error = %e, action = %change.action, "the audit entry could not be stored");
    }
}

pub struct AuditService(pub Context);

/// Entries per page at most; fewer when they are long (a page never exceeds the message limit).
const PAGE_ENTRIES: usize = 500;

#[tonic::async_trait]
impl Audit for AuditService {
    type ListStream = futures::stream::Iter<std::vec::IntoIter<Result<proto::AuditPage, Status>>>;

    async fn list(
        &self,
        request: Request<proto::ListAuditRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let query = wire::requests::list_audit(request.get_ref())?;
        let entries = self.0.blocking(move |s| s.audit_log(&query)).await?;
        let items: Vec<proto::AuditEntry> = entries
            .into_iter()
            .map(|e| proto::AuditEntry {
                id: e.id,
                at: Some(wire::timestamp(e.entry.at)),
                actor: e.entry.actor,
                role: e.entry.role,
                peer: e.entry.peer,
                action: e.entry.action,
                entity: e.entry.entity,
                entity_id: e.entry.entity_id,
                changes: e.entry.changes,
            })
            .collect();
        let mut items = items.into_iter().peekable();
        let mut pages = Vec::new();
        while items.peek().is_some() {
            let page = super::paging::next_page(
                &mut items,
                PAGE_ENTRIES,
                self.0.page_bytes,
                prost::Message::encoded_len,
            );
            pages.push(Ok(proto::AuditPage { items: page }));
        }
        Ok(Response::new(futures::stream::iter(pages)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code, reason = "read through Debug")]
    struct Thing {
        id: i64,
        name: String,
        zone: Option<i64>,
        meta: Option<i64>,
    }

    #[test]
    fn only_changed_fields_are_listed_from_and_to() {
        let before = Thing {
            id: 1,
            name: "Pole 7".into(),
            zone: Some(3),
            meta: Some(1),
        };
        let after = Thing {
            id: 1,
            name: "Pole '; DROP TABLE x; --".into(),
            zone: Some(5),
            meta: Some(2),
        };
        assert_eq!(
            changes(Some(&before), Some(&after)),
            "name: \"Pole 7\" -> \"Pole '; DROP TABLE x; --\"\nzone: 3 -> 5"
        );
        assert!(changes(None, Some(&after)).starts_with("id: -> 1\n"));
        assert_eq!(changes(Some(&before), Some(&before)), "");
    }
}
