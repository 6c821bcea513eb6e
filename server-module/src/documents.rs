//! Documents: titled text owned by one identity, with opaque msgpack metadata.
//!
//! A document is public (every client reads it) or private (only its owner
//! does), chosen when it is created. Each identity holds at most
//! [`Quota::Documents`] documents.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::quotas::{self, Quota};
use crate::validate::{self, MAX_DOCUMENT_BYTES, MAX_PAYLOAD_BYTES};
use crate::{owned_by_caller, OwnedRow};

#[derive(Clone)]
#[spacetimedb::table(name = document, public)]
pub struct Document {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub owner: Identity,
    pub title: String,
    pub content: String,
    /// Opaque msgpack payload, never interpreted here.
    pub metadata: Vec<u8>,
    /// Readable by its owner only.
    pub private: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Everyone reads public documents.
#[client_visibility_filter]
const PUBLIC_DOCUMENTS: Filter = Filter::Sql("SELECT * FROM document WHERE private = false");

/// Owners read their private documents (disjoint from the rule above, so no row comes twice).
#[client_visibility_filter]
const PRIVATE_DOCUMENTS_OF_THEIR_OWNER: Filter =
    Filter::Sql("SELECT * FROM document WHERE private = true AND owner = :sender");

impl OwnedRow for Document {
    const KIND: &'static str = "document";
    fn owner(&self) -> Identity {
        self.owner
    }
}

impl Document {
    /// What the row counts against its owner's byte quota.
    fn bytes(&self) -> usize {
        self.title.len() + self.content.len() + self.metadata.len()
    }
}

/// Checks every client-supplied field of a document row.
fn validate_fields(document: &Document) -> Result<(), String> {
    validate::title("document title", &document.title)?;
    validate::size(
        "document content",
        document.content.len(),
        MAX_DOCUMENT_BYTES,
    )?;
    validate::size(
        "document metadata",
        document.metadata.len(),
        MAX_PAYLOAD_BYTES,
    )
}

/// Validates and inserts a new document owned by the caller.
fn create(
    ctx: &ReducerContext,
    title: String,
    content: String,
    metadata: Vec<u8>,
    private: bool,
) -> Result<(), String> {
    let document = Document {
        id: 0,
        owner: ctx.sender,
        title,
        content,
        metadata,
        private,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    };
    validate_fields(&document)?;
    let bytes = quotas::signed(document.bytes());
    quotas::charge(ctx, document.owner, Quota::Documents, 1, bytes)?;
    let document = ctx.db.document().try_insert(document)?;
    log::info!("document {} created by {}", document.id, document.owner);
    Ok(())
}

/// Creates a public document owned by the caller. Title, content and metadata are size-checked.
#[spacetimedb::reducer]
pub fn create_document(
    ctx: &ReducerContext,
    call_key: CallKey,
    title: String,
    content: String,
    metadata: Vec<u8>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    create(ctx, title, content, metadata, false)
}

/// Creates a private document: only the caller, its owner, can read it.
#[spacetimedb::reducer]
pub fn create_private_document(
    ctx: &ReducerContext,
    call_key: CallKey,
    title: String,
    content: String,
    metadata: Vec<u8>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    create(ctx, title, content, metadata, true)
}

/// Replaces a document's title, content and metadata. Owner only; size-checked.
#[spacetimedb::reducer]
pub fn update_document(
    ctx: &ReducerContext,
    call_key: CallKey,
    id: u64,
    title: String,
    content: String,
    metadata: Vec<u8>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let old = owned_by_caller(ctx, ctx.db.document().id().find(id), id)?;
    let document = Document {
        title,
        content,
        metadata,
        updated_at: ctx.timestamp,
        ..old.clone()
    };
    validate_fields(&document)?;
    let bytes = quotas::delta(old.bytes(), document.bytes());
    quotas::charge(ctx, document.owner, Quota::Documents, 0, bytes)?;
    ctx.db.document().id().update(document);
    crate::chunks::remove_for_document(ctx, id);
    Ok(())
}

/// Deletes a document. Owner only.
#[spacetimedb::reducer]
pub fn delete_document(ctx: &ReducerContext, call_key: CallKey, id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let document = owned_by_caller(ctx, ctx.db.document().id().find(id), id)?;
    let bytes = quotas::signed(document.bytes());
    quotas::release(ctx, document.owner, Quota::Documents, 1, bytes);
    ctx.db.document().id().delete(id);
    crate::chunks::remove_for_document(ctx, id);
    Ok(())
}
