//! Documents: titled text owned by one identity, with opaque msgpack metadata.

use spacetimedb::{Identity, ReducerContext, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::validate::{self, MAX_DOCUMENT_BYTES, MAX_PAYLOAD_BYTES};
use crate::{owned_by_caller, OwnedRow};

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
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl OwnedRow for Document {
    const KIND: &'static str = "document";
    fn owner(&self) -> Identity {
        self.owner
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

/// Creates a document owned by the caller. Title, content and metadata are size-checked.
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
    let document = Document {
        id: 0,
        owner: ctx.sender,
        title,
        content,
        metadata,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    };
    validate_fields(&document)?;
    let document = ctx.db.document().try_insert(document)?;
    log::info!("document {} created by {}", document.id, document.owner);
    Ok(())
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
    let document = owned_by_caller(ctx, ctx.db.document().id().find(id), id)?;
    let document = Document {
        title,
        content,
        metadata,
        updated_at: ctx.timestamp,
        ..document
    };
    validate_fields(&document)?;
    ctx.db.document().id().update(document);
    Ok(())
}

/// Deletes a document. Owner only.
#[spacetimedb::reducer]
pub fn delete_document(ctx: &ReducerContext, call_key: CallKey, id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    owned_by_caller(ctx, ctx.db.document().id().find(id), id)?;
    ctx.db.document().id().delete(id);
    Ok(())
}
