//! Conversations, their participants, and their messages.
//!
//! A conversation belongs to its owner, who admits participants, each with the
//! message roles it may speak in ("user", "assistant", "system", "tool"; an
//! empty list admits it without a voice). Only participants post, and only in their admitted
//! roles, so no one speaks as "system" or "assistant" whom the owner has not
//! admitted to that role. The owner is a participant with every role.
//!
//! A conversation is public (every client reads it and its messages) or
//! private, chosen when it is created. A private conversation is read by its
//! owner, who reads every message in it; each other participant reads the
//! messages it wrote itself and its own participant row, and no one else reads
//! anything, not even who takes part. Messages and participant rows copy the
//! conversation's flag and owner so that each row's visibility is decided from
//! the row alone (see the note on the visibility filters below).
//!
//! Messages carry a `sequence` (1, 2, 3, ... per conversation) so clients can
//! order them without relying on ids or clocks. `append_message` grows a
//! message in place, for streaming a model's output token by token. A message
//! can be changed only by its author while the author may still post in its
//! role; the conversation's owner may delete any message.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, ScheduleAt, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::quotas::{self, Quota};
use crate::validate::{self, MAX_MESSAGE_BYTES, MESSAGE_ROLES};
use crate::{found, owned_by_caller, OwnedRow};

/// The most participants one conversation admits (so deleting one is bounded work).
pub const MAX_PARTICIPANTS: usize = 256;
/// Messages deleted per transaction when a conversation is deleted; the rest
/// go in further transactions scheduled right after.
pub const MESSAGE_DELETE_BATCH: usize = 1_000;

#[derive(Clone)]
#[spacetimedb::table(name = conversation, public)]
pub struct Conversation {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub owner: Identity,
    pub title: String,
    /// Readable by its participants only (fixed at creation).
    pub private: bool,
    /// The highest message sequence ever given out here; never goes down, so a
    /// deleted message's number is not reused.
    pub last_sequence: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An identity admitted to a conversation, and the roles it may post in.
#[derive(Clone)]
#[spacetimedb::table(
    name = conversation_participant,
    public,
    index(name = by_member, btree(columns = [conversation_id, identity]))
)]
pub struct Participant {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub conversation_id: u64,
    #[index(btree)]
    pub identity: Identity,
    /// A subset of [`MESSAGE_ROLES`]; empty for a participant without a voice.
    pub roles: Vec<String>,
    /// The conversation's `private` flag, copied (visibility rules filter on it).
    pub private: bool,
    /// The conversation's owner, copied (visibility rules filter on it).
    #[index(btree)]
    pub conversation_owner: Identity,
    pub admitted_at: Timestamp,
}

#[derive(Clone)]
#[spacetimedb::table(name = message, public)]
pub struct Message {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub conversation_id: u64,
    #[index(btree)]
    pub author: Identity,
    /// One of [`MESSAGE_ROLES`], one the author was admitted to.
    pub role: String,
    pub content: String,
    /// 1, 2, 3, ... within the conversation.
    pub sequence: u64,
    /// The conversation's `private` flag, copied.
    pub private: bool,
    /// The conversation's owner, copied (visibility rules filter on it).
    #[index(btree)]
    pub conversation_owner: Identity,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A deleted conversation whose messages are still being removed, batch by batch.
#[spacetimedb::table(name = message_cleanup, scheduled(delete_orphaned_messages))]
pub struct MessageCleanup {
    #[primary_key]
    #[auto_inc]
    pub scheduled_id: u64,
    pub scheduled_at: ScheduleAt,
    pub conversation_id: u64,
}

// Visibility: decided from each row alone. (SpacetimeDB 1.2 can apply a rule that
// joins the participant list, but then refuses subscriptions with a WHERE clause of
// their own, such as `SELECT * FROM message WHERE conversation_id = 1`.) A column
// compared with `:sender` needs an index of its own: without one, the 1.2 server
// evaluates the rule for the initial rows but drops the rows of later transactions.

#[client_visibility_filter]
const PUBLIC_CONVERSATIONS: Filter =
    Filter::Sql("SELECT * FROM conversation WHERE private = false");

#[client_visibility_filter]
const PRIVATE_CONVERSATIONS_OF_THEIR_OWNER: Filter =
    Filter::Sql("SELECT * FROM conversation WHERE private = true AND owner = :sender");

#[client_visibility_filter]
const PARTICIPANTS_OF_PUBLIC_CONVERSATIONS: Filter =
    Filter::Sql("SELECT * FROM conversation_participant WHERE private = false");

#[client_visibility_filter]
const PARTICIPANTS_OF_PRIVATE_CONVERSATIONS_TO_THEIR_OWNER: Filter = Filter::Sql(
    "SELECT * FROM conversation_participant WHERE private = true AND conversation_owner = :sender",
);

#[client_visibility_filter]
const OWN_PARTICIPATION_IN_PRIVATE_CONVERSATIONS: Filter = Filter::Sql(
    "SELECT * FROM conversation_participant \
     WHERE private = true AND identity = :sender AND conversation_owner <> :sender",
);

#[client_visibility_filter]
const PUBLIC_MESSAGES: Filter = Filter::Sql("SELECT * FROM message WHERE private = false");

#[client_visibility_filter]
const PRIVATE_MESSAGES_OF_THE_CONVERSATION_OWNER: Filter =
    Filter::Sql("SELECT * FROM message WHERE private = true AND conversation_owner = :sender");

#[client_visibility_filter]
const PRIVATE_MESSAGES_OF_THEIR_AUTHOR: Filter = Filter::Sql(
    "SELECT * FROM message WHERE private = true AND author = :sender AND conversation_owner <> :sender",
);

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

/// The participant row of `identity` in a conversation, if it was admitted.
fn participant(
    ctx: &ReducerContext,
    conversation_id: u64,
    identity: Identity,
) -> Option<Participant> {
    ctx.db
        .conversation_participant()
        .by_member()
        .filter((&conversation_id, &identity))
        .next()
}

/// Whether `identity` was admitted to the conversation (in any role, or as a reader).
pub fn is_participant(ctx: &ReducerContext, conversation_id: u64, identity: Identity) -> bool {
    participant(ctx, conversation_id, identity).is_some()
}

/// Ok if the caller may post in the conversation with `role`; otherwise says why not.
pub fn check_may_post(
    ctx: &ReducerContext,
    conversation_id: u64,
    role: &str,
) -> Result<(), String> {
    found(
        ctx.db.conversation().id().find(conversation_id),
        conversation_id,
    )?;
    validate::message_role(role)?;
    let Some(member) = participant(ctx, conversation_id, ctx.sender) else {
        return Err(format!(
            "you are not a participant of conversation {conversation_id}; its owner admits participants"
        ));
    };
    if !member.roles.iter().any(|r| r == role) {
        return Err(format!(
            "conversation {conversation_id} has not admitted you to post as '{role}'"
        ));
    }
    Ok(())
}

/// Checks a list of roles: known ones, each once.
fn validate_roles(roles: &[String]) -> Result<(), String> {
    for (i, role) in roles.iter().enumerate() {
        validate::message_role(role)?;
        if roles[..i].contains(role) {
            return Err(format!("role '{role}' is listed twice"));
        }
    }
    Ok(())
}

fn create(ctx: &ReducerContext, title: String, private: bool) -> Result<(), String> {
    validate::title("conversation title", &title)?;
    quotas::charge(
        ctx,
        ctx.sender,
        Quota::Conversations,
        1,
        quotas::signed(title.len()),
    )?;
    let conversation = ctx.db.conversation().try_insert(Conversation {
        id: 0,
        owner: ctx.sender,
        title,
        private,
        last_sequence: 0,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    })?;
    ctx.db.conversation_participant().insert(Participant {
        id: 0,
        conversation_id: conversation.id,
        identity: ctx.sender,
        roles: MESSAGE_ROLES.iter().map(|r| r.to_string()).collect(),
        private: conversation.private,
        conversation_owner: conversation.owner,
        admitted_at: ctx.timestamp,
    });
    log::info!(
        "conversation {} created by {}",
        conversation.id,
        conversation.owner
    );
    Ok(())
}

/// Starts a public conversation owned by the caller, who may post in every role.
/// The title must be non-blank and short.
#[spacetimedb::reducer]
pub fn create_conversation(
    ctx: &ReducerContext,
    call_key: CallKey,
    title: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    create(ctx, title, false)
}

/// Starts a private conversation: its owner reads it all, each other participant
/// its own messages, and no one else anything.
#[spacetimedb::reducer]
pub fn create_private_conversation(
    ctx: &ReducerContext,
    call_key: CallKey,
    title: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    create(ctx, title, true)
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
    let bytes = quotas::delta(conversation.title.len(), title.len());
    quotas::charge(ctx, conversation.owner, Quota::Conversations, 0, bytes)?;
    ctx.db.conversation().id().update(Conversation {
        title,
        updated_at: ctx.timestamp,
        ..conversation
    });
    Ok(())
}

/// Admits `identity` to a conversation with `roles` (replacing the roles it had).
/// Owner only; the owner's own roles cannot change.
#[spacetimedb::reducer]
pub fn admit_participant(
    ctx: &ReducerContext,
    call_key: CallKey,
    conversation_id: u64,
    identity: Identity,
    roles: Vec<String>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let conversation = owned_by_caller(
        ctx,
        ctx.db.conversation().id().find(conversation_id),
        conversation_id,
    )?;
    if identity == conversation.owner {
        return Err("the owner of a conversation always has every role".into());
    }
    validate_roles(&roles)?;
    let participants = ctx.db.conversation_participant();
    match participant(ctx, conversation_id, identity) {
        Some(member) => {
            participants.id().update(Participant { roles, ..member });
        }
        None => {
            let count = participants
                .conversation_id()
                .filter(conversation_id)
                .count();
            if count >= MAX_PARTICIPANTS {
                return Err(format!(
                    "conversation {conversation_id} has {count} participants; the limit is {MAX_PARTICIPANTS}"
                ));
            }
            participants.insert(Participant {
                id: 0,
                conversation_id,
                identity,
                roles,
                private: conversation.private,
                conversation_owner: conversation.owner,
                admitted_at: ctx.timestamp,
            });
        }
    }
    Ok(())
}

/// Removes a participant from a conversation. Owner only; the owner stays.
/// The participant's messages stay, but it can no longer post or edit them.
#[spacetimedb::reducer]
pub fn remove_participant(
    ctx: &ReducerContext,
    call_key: CallKey,
    conversation_id: u64,
    identity: Identity,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let conversation = owned_by_caller(
        ctx,
        ctx.db.conversation().id().find(conversation_id),
        conversation_id,
    )?;
    if identity == conversation.owner {
        return Err("the owner of a conversation cannot be removed from it".into());
    }
    let member = participant(ctx, conversation_id, identity).ok_or_else(|| {
        format!("{identity} is not a participant of conversation {conversation_id}")
    })?;
    ctx.db.conversation_participant().id().delete(member.id);
    Ok(())
}

/// Deletes a conversation, its participants and every message in it, whoever
/// wrote them. Owner only. Up to [`MESSAGE_DELETE_BATCH`] messages go in this
/// transaction; any more are deleted by scheduled transactions right after.
#[spacetimedb::reducer]
pub fn delete_conversation(ctx: &ReducerContext, call_key: CallKey, id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let conversation = owned_by_caller(ctx, ctx.db.conversation().id().find(id), id)?;
    let bytes = quotas::signed(conversation.title.len());
    quotas::release(ctx, conversation.owner, Quota::Conversations, 1, bytes);
    ctx.db
        .conversation_participant()
        .conversation_id()
        .delete(id);
    ctx.db.conversation().id().delete(id);
    let deleted = delete_message_batch(ctx, id)?;
    log::info!("conversation {id} deleted with {deleted} messages so far");
    Ok(())
}

/// Deletes up to [`MESSAGE_DELETE_BATCH`] messages of a deleted conversation,
/// crediting their authors' quotas, and schedules another batch if any remain.
fn delete_message_batch(ctx: &ReducerContext, conversation_id: u64) -> Result<usize, String> {
    let messages = ctx.db.message();
    let batch: Vec<Message> = messages
        .conversation_id()
        .filter(conversation_id)
        .take(MESSAGE_DELETE_BATCH + 1)
        .collect();
    let more = batch.len() > MESSAGE_DELETE_BATCH;
    let mut deleted = 0;
    for message in batch.into_iter().take(MESSAGE_DELETE_BATCH) {
        let bytes = quotas::signed(message.content.len());
        quotas::release(ctx, message.author, Quota::Messages, 1, bytes);
        crate::streams::forget_message(ctx, message.id)?;
        messages.id().delete(message.id);
        deleted += 1;
    }
    if more {
        ctx.db.message_cleanup().insert(MessageCleanup {
            scheduled_id: 0,
            scheduled_at: ScheduleAt::Time(ctx.timestamp),
            conversation_id,
        });
    }
    Ok(deleted)
}

/// Continues deleting a deleted conversation's messages. Run by the scheduler only.
#[spacetimedb::reducer]
pub fn delete_orphaned_messages(ctx: &ReducerContext, job: MessageCleanup) -> Result<(), String> {
    if ctx.sender != ctx.identity() {
        return Err("delete_orphaned_messages runs on the module's schedule only".into());
    }
    delete_message_batch(ctx, job.conversation_id)?;
    Ok(())
}

/// Posts a message, authored by the caller, to a conversation it was admitted
/// to in `role`. The content may be empty (a message about to be streamed) but
/// not over the size limit. The sequence is the conversation's next one (kept
/// on the conversation, so posting costs the same however long the conversation is).
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
    check_may_post(ctx, conversation_id, &role)?;
    let conversation = found(
        ctx.db.conversation().id().find(conversation_id),
        conversation_id,
    )?;
    validate::size("message content", content.len(), MAX_MESSAGE_BYTES)?;
    quotas::charge(
        ctx,
        ctx.sender,
        Quota::Messages,
        1,
        quotas::signed(content.len()),
    )?;
    let sequence = conversation.last_sequence + 1;
    let (private, conversation_owner) = (conversation.private, conversation.owner);
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
        private,
        conversation_owner,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    })?;
    Ok(())
}

/// The caller's message `id`, if the caller may still post in its role.
fn editable_message(ctx: &ReducerContext, id: u64) -> Result<Message, String> {
    let message = owned_by_caller(ctx, ctx.db.message().id().find(id), id)?;
    check_may_post(ctx, message.conversation_id, &message.role)?;
    Ok(message)
}

/// Writes `content` over a message, size- and quota-checked.
fn replace_content(ctx: &ReducerContext, message: Message, content: String) -> Result<(), String> {
    validate::size("message content", content.len(), MAX_MESSAGE_BYTES)?;
    let bytes = quotas::delta(message.content.len(), content.len());
    quotas::charge(ctx, message.author, Quota::Messages, 0, bytes)?;
    ctx.db.message().id().update(Message {
        content,
        updated_at: ctx.timestamp,
        ..message
    });
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
    let message = editable_message(ctx, id)?;
    validate::size(
        "message content after appending",
        message.content.len() + delta.len(),
        MAX_MESSAGE_BYTES,
    )?;
    let content = message.content.clone() + &delta;
    replace_content(ctx, message, content)
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
    let message = editable_message(ctx, id)?;
    replace_content(ctx, message, content)
}

/// Deletes a message: its author, or the conversation's owner, may.
/// The other messages keep their sequence numbers.
#[spacetimedb::reducer]
pub fn delete_message(ctx: &ReducerContext, call_key: CallKey, id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let message = found(ctx.db.message().id().find(id), id)?;
    let moderator = ctx
        .db
        .conversation()
        .id()
        .find(message.conversation_id)
        .is_some_and(|c| c.owner == ctx.sender);
    if message.author != ctx.sender && !moderator {
        return Err(format!("message {id} belongs to another identity"));
    }
    let bytes = quotas::signed(message.content.len());
    quotas::release(ctx, message.author, Quota::Messages, 1, bytes);
    crate::streams::forget_message(ctx, id)?;
    ctx.db.message().id().delete(id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_known_and_listed_once() {
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(validate_roles(&roles(&[])), Ok(()));
        assert_eq!(validate_roles(&roles(&["user", "tool"])), Ok(()));
        assert_eq!(
            validate_roles(&roles(&["user", "user"])),
            Err("role 'user' is listed twice".into())
        );
        assert!(validate_roles(&roles(&["root"])).is_err());
    }
}
