//! Streamed messages: a model's reply persisted batch by batch as it arrives.
//!
//! A stream belongs to one assistant message (posted empty by its author with
//! `post_message`). Its text arrives as `stream_chunk` rows, appended in order
//! (sequence 1, 2, 3, ...) and never changed, so a watcher receives each batch
//! once instead of the whole growing text. The `stream` row says how far it got
//! and how it ended; ending it in any way (done, failed, cancelled) folds the
//! chunks into the message's content in the same transaction.
//!
//! Only the stream's author writes its chunks (while the conversation lets it
//! post as assistant) or ends it; any participant of the conversation may cancel
//! it. Chunk bytes count against the author's message quota as they are written.
//! Streams and chunks of a private conversation are visible as its messages are:
//! to the conversation's owner and to their author.

use spacetimedb::{client_visibility_filter, Filter, Identity, ReducerContext, Table, Timestamp};

use crate::agents;
use crate::calls::{self, CallKey};
use crate::conversations::{check_may_post, is_participant, message, Message};
use crate::quotas::{self, Quota};
use crate::validate::{self, MAX_MESSAGE_BYTES};
use crate::{found, owned_by_caller, OwnedRow};

/// A stream that is still receiving chunks.
pub const STREAMING: &str = "streaming";
/// Ended normally; the message holds the whole reply.
pub const DONE: &str = "done";
/// Stopped by a participant; the message holds what was written until then.
pub const CANCELLED: &str = "cancelled";
/// The provider failed; the message holds what was written until then.
pub const FAILED: &str = "failed";
/// Failure messages and cancel reasons are cut to this many bytes.
pub const MAX_DETAIL_BYTES: usize = 1024;

#[spacetimedb::table(name = stream, public)]
pub struct Stream {
    /// The message this stream fills.
    #[primary_key]
    pub message_id: u64,
    #[index(btree)]
    pub conversation_id: u64,
    #[index(btree)]
    pub author: Identity,
    /// The conversation's `private` flag and owner, copied (visibility rules filter on them).
    pub private: bool,
    #[index(btree)]
    pub conversation_owner: Identity,
    /// The agent the reply speaks for (0: none), owned by the author.
    pub agent_id: u64,
    /// [`STREAMING`], [`DONE`], [`CANCELLED`] or [`FAILED`].
    pub status: String,
    /// The provider and model that wrote the last chunk (after a fallback, the new one).
    pub provider: String,
    pub model: String,
    /// The sequence of the last chunk written (0: none yet).
    pub last_sequence: u64,
    /// Bytes of text written so far.
    pub length: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Why it failed or was cancelled ("" otherwise).
    pub detail: String,
    /// Who ended it, once ended.
    pub ended_by: Option<Identity>,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
}

#[spacetimedb::table(name = stream_chunk, public)]
pub struct StreamChunk {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub message_id: u64,
    /// The stream's author, and the conversation's `private` flag and owner, copied.
    #[index(btree)]
    pub author: Identity,
    pub private: bool,
    #[index(btree)]
    pub conversation_owner: Identity,
    /// 1, 2, 3, ... within the stream, without gaps.
    pub sequence: u64,
    pub text: String,
    pub created_at: Timestamp,
}

// Visibility as for messages (see conversations.rs), decided from each row alone.

#[client_visibility_filter]
const PUBLIC_STREAMS: Filter = Filter::Sql("SELECT * FROM stream WHERE private = false");

#[client_visibility_filter]
const PRIVATE_STREAMS_OF_THE_CONVERSATION_OWNER: Filter =
    Filter::Sql("SELECT * FROM stream WHERE private = true AND conversation_owner = :sender");

#[client_visibility_filter]
const PRIVATE_STREAMS_OF_THEIR_AUTHOR: Filter = Filter::Sql(
    "SELECT * FROM stream WHERE private = true AND author = :sender AND conversation_owner <> :sender",
);

#[client_visibility_filter]
const PUBLIC_CHUNKS: Filter = Filter::Sql("SELECT * FROM stream_chunk WHERE private = false");

#[client_visibility_filter]
const PRIVATE_CHUNKS_OF_THE_CONVERSATION_OWNER: Filter =
    Filter::Sql("SELECT * FROM stream_chunk WHERE private = true AND conversation_owner = :sender");

#[client_visibility_filter]
const PRIVATE_CHUNKS_OF_THEIR_AUTHOR: Filter = Filter::Sql(
    "SELECT * FROM stream_chunk \
     WHERE private = true AND author = :sender AND conversation_owner <> :sender",
);

impl OwnedRow for Stream {
    const KIND: &'static str = "stream of message";
    fn owner(&self) -> Identity {
        self.author
    }
}

/// Starts streaming into message `message_id`: an empty assistant message the
/// caller posted. `agent_id` (0 for none) must be the caller's agent.
#[spacetimedb::reducer]
pub fn start_stream(
    ctx: &ReducerContext,
    call_key: CallKey,
    message_id: u64,
    agent_id: u64,
    provider: String,
    model: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let message = owned_by_caller(ctx, ctx.db.message().id().find(message_id), message_id)?;
    if message.role != "assistant" || !message.content.is_empty() {
        return Err(format!(
            "message {message_id} cannot be streamed into: it must be an empty assistant message"
        ));
    }
    if ctx.db.stream().message_id().find(message_id).is_some() {
        return Err(format!("message {message_id} already has a stream"));
    }
    agents::check_own_or_none(ctx, agent_id)?;
    validate::title("provider", &provider)?;
    validate::title("model", &model)?;
    ctx.db.stream().insert(Stream {
        message_id,
        conversation_id: message.conversation_id,
        author: ctx.sender,
        private: message.private,
        conversation_owner: message.conversation_owner,
        agent_id,
        status: STREAMING.into(),
        provider,
        model,
        last_sequence: 0,
        length: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        detail: String::new(),
        ended_by: None,
        started_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    });
    Ok(())
}

/// Appends the next batch of text. Author only, while streaming; `sequence`
/// must be the next one, so batches are never lost, repeated or reordered.
#[spacetimedb::reducer]
pub fn append_chunk(
    ctx: &ReducerContext,
    call_key: CallKey,
    message_id: u64,
    sequence: u64,
    text: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let stream = live_stream_of_caller(ctx, message_id)?;
    let stream = write_chunk(ctx, stream, sequence, text)?;
    ctx.db.stream().message_id().update(stream);
    Ok(())
}

/// Ends a stream normally: records who answered last and the token usage, and
/// folds the chunks into the message. Author only.
#[spacetimedb::reducer]
pub fn finish_stream(
    ctx: &ReducerContext,
    call_key: CallKey,
    message_id: u64,
    provider: String,
    model: String,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let stream = live_stream_of_caller(ctx, message_id)?;
    validate::title("provider", &provider)?;
    validate::title("model", &model)?;
    end(
        ctx,
        Stream {
            provider,
            model,
            prompt_tokens,
            completion_tokens,
            ..stream
        },
        DONE,
        "",
    )
}

/// Ends a stream as failed with the provider's message; what was written stays. Author only.
#[spacetimedb::reducer]
pub fn fail_stream(
    ctx: &ReducerContext,
    call_key: CallKey,
    message_id: u64,
    error: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let stream = live_stream_of_caller(ctx, message_id)?;
    end(ctx, stream, FAILED, &error)
}

/// Stops a stream: its author or any participant of the conversation may, from
/// any process; the author's next chunk is refused. What was written stays.
#[spacetimedb::reducer]
pub fn cancel_stream(
    ctx: &ReducerContext,
    call_key: CallKey,
    message_id: u64,
    reason: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let stream = found(ctx.db.stream().message_id().find(message_id), message_id)?;
    if stream.author != ctx.sender && !is_participant(ctx, stream.conversation_id, ctx.sender) {
        return Err(format!(
            "stream of message {message_id} may be cancelled only by its author or a \
             participant of conversation {}",
            stream.conversation_id
        ));
    }
    ensure_streaming(&stream)?;
    end(ctx, stream, CANCELLED, &reason)
}

/// Removes the stream and chunks of a message being deleted.
pub(crate) fn forget_message(ctx: &ReducerContext, message_id: u64) -> Result<(), String> {
    if let Some(stream) = ctx.db.stream().message_id().find(message_id) {
        if stream.status == STREAMING {
            // Its chunks were charged as written, and the message does not hold them yet.
            let bytes = quotas::signed(stream.length as usize);
            quotas::charge(ctx, stream.author, Quota::Messages, 0, -bytes)?;
        }
    }
    ctx.db.stream_chunk().message_id().delete(message_id);
    ctx.db.stream().message_id().delete(message_id);
    Ok(())
}

/// The caller's own stream of `message_id`, still streaming.
fn live_stream_of_caller(ctx: &ReducerContext, message_id: u64) -> Result<Stream, String> {
    let stream = owned_by_caller(
        ctx,
        ctx.db.stream().message_id().find(message_id),
        message_id,
    )?;
    ensure_streaming(&stream)?;
    Ok(stream)
}

fn ensure_streaming(stream: &Stream) -> Result<(), String> {
    if stream.status == STREAMING {
        return Ok(());
    }
    let detail = if stream.detail.is_empty() {
        String::new()
    } else {
        format!(": {}", stream.detail)
    };
    Err(format!(
        "stream of message {} is {}{detail}",
        stream.message_id, stream.status
    ))
}

/// Inserts chunk `sequence` and returns the stream advanced past it (not yet saved).
fn write_chunk(
    ctx: &ReducerContext,
    stream: Stream,
    sequence: u64,
    text: String,
) -> Result<Stream, String> {
    let expected = stream.last_sequence + 1;
    if sequence != expected {
        return Err(format!(
            "chunk {sequence} of message {} is out of order: the next is {expected}",
            stream.message_id
        ));
    }
    if text.is_empty() {
        return Err("a chunk's text must not be empty".into());
    }
    let length = stream.length + text.len() as u64;
    validate::size("streamed message", length as usize, MAX_MESSAGE_BYTES)?;
    check_may_post(ctx, stream.conversation_id, "assistant")?;
    quotas::charge(
        ctx,
        stream.author,
        Quota::Messages,
        0,
        quotas::signed(text.len()),
    )?;
    ctx.db.stream_chunk().insert(StreamChunk {
        id: 0,
        message_id: stream.message_id,
        author: stream.author,
        private: stream.private,
        conversation_owner: stream.conversation_owner,
        sequence,
        text,
        created_at: ctx.timestamp,
    });
    Ok(Stream {
        last_sequence: sequence,
        length,
        updated_at: ctx.timestamp,
        ..stream
    })
}

/// Ends `stream` with `status`, folding its chunks into the message's content
/// (their bytes were charged to the author's quota as they were written).
fn end(ctx: &ReducerContext, stream: Stream, status: &str, detail: &str) -> Result<(), String> {
    let message_id = stream.message_id;
    let message = found(ctx.db.message().id().find(message_id), message_id)?;
    let mut chunks: Vec<StreamChunk> = ctx
        .db
        .stream_chunk()
        .message_id()
        .filter(message_id)
        .collect();
    chunks.sort_by_key(|c| c.sequence);
    let content: String = chunks.into_iter().map(|c| c.text).collect();
    ctx.db.message().id().update(Message {
        content,
        updated_at: ctx.timestamp,
        ..message
    });
    ctx.db.stream().message_id().update(Stream {
        status: status.into(),
        detail: validate::truncate(detail, MAX_DETAIL_BYTES),
        ended_by: Some(ctx.sender),
        updated_at: ctx.timestamp,
        ..stream
    });
    Ok(())
}
