//! Conversations and their messages.
//!
//! Anyone may post to an existing conversation; a message can then be changed
//! only by its author, and a conversation only by its owner. Messages carry a
//! `sequence` (1, 2, 3, ... per conversation) so clients can order them without
//! relying on ids or clocks. `append_message` grows a message in place, for
//! streaming a model's output token by token.

use spacetimedb::{Identity, ReducerContext, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::validate::{self, MAX_MESSAGE_BYTES};
use crate::{found, owned_by_caller, OwnedRow};

#[spacetimedb::table(name = conversation, public)]
pub struct Conversation {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub owner: Identity,
    pub title: String,
    /// The highest message sequence ever given out here; never goes down, so a
    /// deleted message's number is not reused.
    pub last_sequence: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[spacetimedb::table(name = message, public)]
pub struct Message {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub conversation_id: u64,
    pub author: Identity,
    /// One of [`validate::MESSAGE_ROLES`].
    pub role: String,
    pub content: String,
    /// 1, 2, 3, ... within the conversation.
    pub sequence: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl OwnedRow for Conversation {
    const KIND: &'static str = "conversation";
    fn owner(&self) -> Identity {
        self.owner
    }
}

impl OwnedRow for Message {
    const KIND: &'static str = "message";
    fn owner(&self) -> Identity {
        self.author
    }
}

/// Starts a conversation owned by the caller. The title must be non-blank and short.
#[spacetimedb::reducer]
pub fn create_conversation(
    ctx: &ReducerContext,
    call_key: CallKey,
    title: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    validate::title("conversation title", &title)?;
    let conversation = ctx.db.conversation().try_insert(Conversation {
        id: 0,
        owner: ctx.sender,
        title,
        last_sequence: 0,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    })?;
    log::info!(
        "conversation {} created by {}",
        conversation.id,
        conversation.owner
    );
    Ok(())
}

/// Changes a conversation's title. Owner only.
#[spacetimedb::reducer]
pub fn rename_conversation(
    ctx: &ReducerContext,
    call_key: CallKey,
    id: u64,
    title: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let conversation = owned_by_caller(ctx, ctx.db.conversation().id().find(id), id)?;
    validate::title("conversation title", &title)?;
    ctx.db.conversation().id().update(Conversation {
        title,
        updated_at: ctx.timestamp,
        ..conversation
    });
    Ok(())
}

/// Deletes a conversation and every message in it, whoever wrote them. Owner only.
#[spacetimedb::reducer]
pub fn delete_conversation(ctx: &ReducerContext, call_key: CallKey, id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    owned_by_caller(ctx, ctx.db.conversation().id().find(id), id)?;
    let messages = ctx.db.message().conversation_id().delete(id);
    ctx.db.conversation().id().delete(id);
    log::info!("conversation {id} deleted with its {messages} messages");
    Ok(())
}

/// Posts a message, authored by the caller, to an existing conversation; any
/// identity may post. The role must be one of the four known ones; the content
/// may be empty (a message about to be streamed) but not over the size limit.
/// The sequence is the conversation's next one (kept on the conversation, so
/// posting costs the same however long the conversation is).
#[spacetimedb::reducer]
pub fn post_message(
    ctx: &ReducerContext,
    call_key: CallKey,
    conversation_id: u64,
    role: String,
    content: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let conversation = found(
        ctx.db.conversation().id().find(conversation_id),
        conversation_id,
    )?;
    validate::message_role(&role)?;
    validate::size("message content", content.len(), MAX_MESSAGE_BYTES)?;
    let sequence = conversation.last_sequence + 1;
    ctx.db.conversation().id().update(Conversation {
        last_sequence: sequence,
        updated_at: ctx.timestamp,
        ..conversation
    });
    ctx.db.message().try_insert(Message {
        id: 0,
        conversation_id,
        author: ctx.sender,
        role,
        content,
        sequence,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    })?;
    Ok(())
}

/// Appends `delta` to a message's content (token streaming). Author only; the
/// content as a whole must stay within the message size limit.
#[spacetimedb::reducer]
pub fn append_message(
    ctx: &ReducerContext,
    call_key: CallKey,
    id: u64,
    delta: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let mut message = owned_by_caller(ctx, ctx.db.message().id().find(id), id)?;
    validate::size(
        "message content after appending",
        message.content.len() + delta.len(),
        MAX_MESSAGE_BYTES,
    )?;
    message.content.push_str(&delta);
    message.updated_at = ctx.timestamp;
    ctx.db.message().id().update(message);
    Ok(())
}

/// Replaces a message's content. Author only; size-checked.
#[spacetimedb::reducer]
pub fn edit_message(
    ctx: &ReducerContext,
    call_key: CallKey,
    id: u64,
    content: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let message = owned_by_caller(ctx, ctx.db.message().id().find(id), id)?;
    validate::size("message content", content.len(), MAX_MESSAGE_BYTES)?;
    ctx.db.message().id().update(Message {
        content,
        updated_at: ctx.timestamp,
        ..message
    });
    Ok(())
}

/// Deletes a message. Author only. The other messages keep their sequence numbers.
#[spacetimedb::reducer]
pub fn delete_message(ctx: &ReducerContext, call_key: CallKey, id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    owned_by_caller(ctx, ctx.db.message().id().find(id), id)?;
    ctx.db.message().id().delete(id);
    Ok(())
}
