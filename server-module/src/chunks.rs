//! Chunks: the passages of a document, each with its embedding, for knowledge retrieval.
//!
//! A document's owner writes its chunks in batches. `begin_chunks` declares the set
//! (embedding model, dimension, how many chunks will come, a fingerprint of what was
//! chunked) and drops any earlier set; `add_chunks` appends the next positions. Every
//! chunk's text is checked to be exactly the document's text at its character offsets,
//! so provenance cannot lie. Deleting or replacing a document removes its chunks in the
//! same transaction ([`remove_for_document`], called from the document reducers).
//!
//! Visibility follows the document's, by the same mechanism as documents and
//! messages: each row carries its document's `private` flag and owner (both fixed
//! when the document is created), and row-level filters show a private document's
//! chunks and chunk set to that owner only. A stranger's subscription, one-off query
//! and so search index never receive them.
//!
//! Sizes and counts are bounded here, per document: at most [`MAX_CHUNKS_PER_DOCUMENT`]
//! chunks, [`MAX_VECTOR_BYTES_PER_DOCUMENT`] of embeddings, and chunk text of at most
//! [`MAX_TEXT_PER_CONTENT`] times the document's content; so what an identity stores
//! in chunks is bounded by its documents (and their quota). A batch carries at most
//! [`MAX_CHUNKS_PER_BATCH`] chunks, so every transaction here does bounded work.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, SpacetimeType, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::documents::document;
use crate::owned_by_caller;
use crate::validate;

/// Chunks one document may have.
pub const MAX_CHUNKS_PER_DOCUMENT: u32 = 8192;
/// Chunks one `add_chunks` call may carry.
pub const MAX_CHUNKS_PER_BATCH: usize = 512;
/// One chunk's text.
pub const MAX_CHUNK_TEXT_BYTES: usize = 16 * 1024;
/// Embedding dimensions (values per vector).
pub const MAX_EMBEDDING_DIMENSION: u32 = 4096;
/// Embedding model names and chunk-set fingerprints.
pub const MAX_NAME_BYTES: usize = 128;
/// All of one document's embeddings together (e.g. 4,096 chunks of 1,024 values).
pub const MAX_VECTOR_BYTES_PER_DOCUMENT: u64 = 16 * 1024 * 1024;
/// All of one document's chunk texts together, as a multiple of its content: overlap
/// repeats text, but never more than this.
pub const MAX_TEXT_PER_CONTENT: u64 = 2;
/// Bytes per embedding value: little-endian IEEE 754 float32.
pub const BYTES_PER_VALUE: usize = 4;

/// One passage of a document with its embedding.
#[spacetimedb::table(name = chunk, public)]
pub struct Chunk {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub document_id: u64,
    /// 0, 1, 2, ... in document order.
    pub position: u32,
    /// Exactly the document's content from `start_char` to `end_char`.
    pub text: String,
    /// Character (not byte) offsets into the document's content, end exclusive.
    pub start_char: u32,
    pub end_char: u32,
    /// `dimension` little-endian float32 values.
    pub embedding: Vec<u8>,
    pub model: String,
    pub dimension: u32,
    /// The document's `private` flag, copied (visibility rules filter on it).
    pub private: bool,
    /// The document's owner, copied (visibility rules filter on it).
    #[index(btree)]
    pub owner: Identity,
    pub ingested_by: Identity,
    pub created_at: Timestamp,
}

/// The chunk set of one document: what made it, and how far its writing got.
#[spacetimedb::table(name = chunk_set, public)]
pub struct ChunkSet {
    #[primary_key]
    pub document_id: u64,
    pub model: String,
    pub dimension: u32,
    /// Chosen by the writer (e.g. a hash of content, splitter settings and model), so it
    /// can tell that re-ingesting an unchanged document has nothing to do.
    pub fingerprint: String,
    /// How many chunks the set will have; it is complete when `stored == expected`.
    pub expected: u32,
    pub stored: u32,
    /// Bytes of chunk text stored so far.
    pub text_bytes: u64,
    /// The document's `private` flag, copied.
    pub private: bool,
    /// The document's owner, copied.
    #[index(btree)]
    pub owner: Identity,
    pub ingested_by: Identity,
    pub updated_at: Timestamp,
}

// Visibility, from each row alone (as for documents): a column compared with
// `:sender` has an index of its own, which the 1.2 server needs to apply the rule
// to later transactions, not only to the initial rows.

#[client_visibility_filter]
const CHUNKS_OF_PUBLIC_DOCUMENTS: Filter = Filter::Sql("SELECT * FROM chunk WHERE private = false");

#[client_visibility_filter]
const CHUNKS_OF_PRIVATE_DOCUMENTS_OF_THEIR_OWNER: Filter =
    Filter::Sql("SELECT * FROM chunk WHERE private = true AND owner = :sender");

#[client_visibility_filter]
const CHUNK_SETS_OF_PUBLIC_DOCUMENTS: Filter =
    Filter::Sql("SELECT * FROM chunk_set WHERE private = false");

#[client_visibility_filter]
const CHUNK_SETS_OF_PRIVATE_DOCUMENTS_OF_THEIR_OWNER: Filter =
    Filter::Sql("SELECT * FROM chunk_set WHERE private = true AND owner = :sender");

/// A chunk as the writer sends it (the module adds ids, model and provenance).
#[derive(SpacetimeType)]
pub struct NewChunk {
    pub position: u32,
    pub text: String,
    pub start_char: u32,
    pub end_char: u32,
    pub embedding: Vec<u8>,
}

/// Removes a document's chunks and its chunk set; returns how many chunks went.
/// Called by the reducers that delete or replace a document, in their transaction.
pub fn remove_for_document(ctx: &ReducerContext, document_id: u64) -> u64 {
    ctx.db.chunk_set().document_id().delete(document_id);
    ctx.db.chunk().document_id().delete(document_id)
}

/// Starts (or restarts) a document's chunk set, dropping any chunks it had. Owner only.
#[spacetimedb::reducer]
pub fn begin_chunks(
    ctx: &ReducerContext,
    call_key: CallKey,
    document_id: u64,
    model: String,
    dimension: u32,
    fingerprint: String,
    expected: u32,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let document = owned_by_caller(ctx, ctx.db.document().id().find(document_id), document_id)?;
    validate_name("embedding model", &model)?;
    validate_name("chunk set fingerprint", &fingerprint)?;
    if dimension == 0 || dimension > MAX_EMBEDDING_DIMENSION {
        return Err(format!(
            "embedding dimension is {dimension}; it must be 1 to {MAX_EMBEDDING_DIMENSION}"
        ));
    }
    if expected == 0 || expected > MAX_CHUNKS_PER_DOCUMENT {
        return Err(format!(
            "a document has 1 to {MAX_CHUNKS_PER_DOCUMENT} chunks; {expected} were announced"
        ));
    }
    let vector_bytes = expected as u64 * dimension as u64 * BYTES_PER_VALUE as u64;
    if vector_bytes > MAX_VECTOR_BYTES_PER_DOCUMENT {
        return Err(format!(
            "{expected} embeddings of {dimension} values are {vector_bytes} bytes; \
             the limit per document is {MAX_VECTOR_BYTES_PER_DOCUMENT}"
        ));
    }
    let removed = remove_for_document(ctx, document_id);
    ctx.db.chunk_set().insert(ChunkSet {
        document_id,
        model,
        dimension,
        fingerprint,
        expected,
        stored: 0,
        text_bytes: 0,
        private: document.private,
        owner: document.owner,
        ingested_by: ctx.sender,
        updated_at: ctx.timestamp,
    });
    log::info!("document {document_id}: chunk set started ({expected} chunks, {removed} dropped)");
    Ok(())
}

/// Appends the next chunks of a document's set, in position order. Owner only.
#[spacetimedb::reducer]
pub fn add_chunks(
    ctx: &ReducerContext,
    call_key: CallKey,
    document_id: u64,
    chunks: Vec<NewChunk>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let document = owned_by_caller(ctx, ctx.db.document().id().find(document_id), document_id)?;
    let set = ctx
        .db
        .chunk_set()
        .document_id()
        .find(document_id)
        .ok_or_else(|| {
            format!("document {document_id} has no chunk set: call begin_chunks first")
        })?;
    if chunks.is_empty() || chunks.len() > MAX_CHUNKS_PER_BATCH {
        return Err(format!(
            "a batch has 1 to {MAX_CHUNKS_PER_BATCH} chunks; this one has {}",
            chunks.len()
        ));
    }
    let remaining = set.expected - set.stored;
    if chunks.len() > remaining as usize {
        return Err(format!(
            "document {document_id} expects {remaining} more chunks; the batch has {}",
            chunks.len()
        ));
    }
    let content = CharOffsets::new(&document.content);
    for (i, new) in chunks.iter().enumerate() {
        validate_chunk(new, set.stored + i as u32, set.dimension, &content)?;
    }
    let text_bytes = set.text_bytes + chunks.iter().map(|c| c.text.len() as u64).sum::<u64>();
    let text_limit = MAX_TEXT_PER_CONTENT * document.content.len() as u64;
    if text_bytes > text_limit {
        return Err(format!(
            "document {document_id}'s chunks would hold {text_bytes} bytes of text; \
             the limit is {MAX_TEXT_PER_CONTENT} times its content ({text_limit})"
        ));
    }
    let stored = set.stored + chunks.len() as u32;
    for new in chunks {
        ctx.db.chunk().insert(Chunk {
            id: 0,
            document_id,
            position: new.position,
            text: new.text,
            start_char: new.start_char,
            end_char: new.end_char,
            embedding: new.embedding,
            model: set.model.clone(),
            dimension: set.dimension,
            private: document.private,
            owner: document.owner,
            ingested_by: ctx.sender,
            created_at: ctx.timestamp,
        });
    }
    ctx.db.chunk_set().document_id().update(ChunkSet {
        stored,
        text_bytes,
        updated_at: ctx.timestamp,
        ..set
    });
    Ok(())
}

fn validate_name(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be blank"));
    }
    validate::size(field, value.len(), MAX_NAME_BYTES)
}

/// Checks one chunk: its position comes next, its embedding has the set's dimension,
/// and its text is the document's text at its offsets.
fn validate_chunk(
    chunk: &NewChunk,
    position: u32,
    dimension: u32,
    content: &CharOffsets,
) -> Result<(), String> {
    if chunk.position != position {
        return Err(format!(
            "chunk position {} is out of order; the next position is {position}",
            chunk.position
        ));
    }
    let what = format!("chunk {position}");
    if chunk.text.trim().is_empty() {
        return Err(format!("{what} text must not be blank"));
    }
    validate::size(
        &format!("{what} text"),
        chunk.text.len(),
        MAX_CHUNK_TEXT_BYTES,
    )?;
    let want = dimension as usize * BYTES_PER_VALUE;
    if chunk.embedding.len() != want {
        return Err(format!(
            "{what} embedding is {} bytes; {dimension} float32 values are {want}",
            chunk.embedding.len()
        ));
    }
    match content.slice(chunk.start_char, chunk.end_char) {
        Some(text) if text == chunk.text => Ok(()),
        Some(_) => Err(format!(
            "{what} text is not the document's text at characters {}..{}",
            chunk.start_char, chunk.end_char
        )),
        None => Err(format!(
            "{what} offsets {}..{} are outside the document ({} characters)",
            chunk.start_char,
            chunk.end_char,
            content.len()
        )),
    }
}

/// A document's content addressable by character offset (byte offsets computed once).
struct CharOffsets<'a> {
    text: &'a str,
    /// Byte offset of each character, and the text's length at the end; empty when ASCII.
    bytes_at: Vec<usize>,
}

impl<'a> CharOffsets<'a> {
    fn new(text: &'a str) -> Self {
        let bytes_at = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices()
                .map(|(at, _)| at)
                .chain([text.len()])
                .collect()
        };
        CharOffsets { text, bytes_at }
    }

    fn len(&self) -> usize {
        if self.bytes_at.is_empty() {
            self.text.len()
        } else {
            self.bytes_at.len() - 1
        }
    }

    fn slice(&self, start: u32, end: u32) -> Option<&'a str> {
        let (start, end) = (start as usize, end as usize);
        if start >= end || end > self.len() {
            return None;
        }
        if self.bytes_at.is_empty() {
            return Some(&self.text[start..end]);
        }
        Some(&self.text[self.bytes_at[start]..self.bytes_at[end]])
    }
}

#[cfg(test)]
mod tests {
    use super::CharOffsets;

    #[test]
    fn offsets_count_characters_not_bytes() {
        let text = "héllo wörld";
        let offsets = CharOffsets::new(text);
        assert_eq!(offsets.len(), 11);
        assert_eq!(offsets.slice(6, 11), Some("wörld"));
        assert_eq!(offsets.slice(0, 5), Some("héllo"));
        assert_eq!(offsets.slice(6, 12), None);
        assert_eq!(offsets.slice(3, 3), None);
    }

    #[test]
    fn ascii_text_slices_directly() {
        let offsets = CharOffsets::new("alpha beta");
        assert_eq!(offsets.len(), 10);
        assert_eq!(offsets.slice(6, 10), Some("beta"));
        assert_eq!(offsets.slice(0, 11), None);
    }
}
