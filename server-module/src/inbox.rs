//! Agent inboxes: messages from one agent to another, delivered when acknowledged.
//!
//! A message stays unacknowledged until the recipient's owner acknowledges it, so a
//! recipient that was offline or crashed finds it again (its inbox is a subscription).
//! Acknowledging twice is harmless. Only an agent's owner sends in its name.
//!
//! Messages are private: a client sees those its identity sent and those addressed
//! to its agents, nothing else. The rules read only the row's own indexed columns
//! (the recipient's owner is copied into it), so subscriptions stay live.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, Table, Timestamp};

use crate::agents::agent;
use crate::calls::{self, CallKey};
use crate::quotas::{self, Quota};
use crate::validate::{self, MAX_PAYLOAD_BYTES};
use crate::{found, owned_by_caller, OwnedRow};

/// One message in an agent's inbox.
#[spacetimedb::table(name = inbox_message, public)]
pub struct InboxMessage {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// Chosen by the sender to find its new row (reducers return no values).
    #[index(btree)]
    pub ticket: u128,
    pub from_agent: u64,
    #[index(btree)]
    pub to_agent: u64,
    /// msgpack, opaque here.
    pub body: Vec<u8>,
    /// The message this one answers (0 for none).
    pub reply_to: u64,
    #[index(btree)]
    pub sender: Identity,
    /// The owner of `to_agent` when the message was sent.
    #[index(btree)]
    pub recipient: Identity,
    /// Sender and recipient are the same identity (keeps the two rules below disjoint).
    pub to_self: bool,
    pub sent_at: Timestamp,
    /// When the recipient confirmed delivery; None until then.
    pub acknowledged_at: Option<Timestamp>,
}

/// Senders see what they sent.
#[client_visibility_filter]
const MESSAGES_SENT: Filter = Filter::Sql("SELECT * FROM inbox_message WHERE sender = :sender");

/// Recipients see what was sent to their agents (by others: their own are above).
#[client_visibility_filter]
const MESSAGES_RECEIVED: Filter =
    Filter::Sql("SELECT * FROM inbox_message WHERE recipient = :sender AND to_self = false");

impl OwnedRow for InboxMessage {
    const KIND: &'static str = "inbox message";
    fn owner(&self) -> Identity {
        self.sender
    }
}

/// Sends `body` from one of the caller's agents to another agent.
#[spacetimedb::reducer]
pub fn send_agent_message(
    ctx: &ReducerContext,
    call_key: CallKey,
    ticket: u128,
    from_agent: u64,
    to_agent: u64,
    body: Vec<u8>,
    reply_to: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    owned_by_caller(ctx, ctx.db.agent().id().find(from_agent), from_agent)?;
    let recipient = found(ctx.db.agent().id().find(to_agent), to_agent)?.owner;
    validate::size("message body", body.len(), MAX_PAYLOAD_BYTES)?;
    if reply_to != 0 {
        let original = found(ctx.db.inbox_message().id().find(reply_to), reply_to)?;
        if original.to_agent != from_agent {
            return Err(format!(
                "message {reply_to} was not sent to agent {from_agent}; it cannot answer it"
            ));
        }
    }
    quotas::charge(
        ctx,
        ctx.sender,
        Quota::AgentMessages,
        1,
        quotas::signed(body.len()),
    )?;
    ctx.db.inbox_message().insert(InboxMessage {
        id: 0,
        ticket,
        from_agent,
        to_agent,
        body,
        reply_to,
        sender: ctx.sender,
        recipient,
        to_self: recipient == ctx.sender,
        sent_at: ctx.timestamp,
        acknowledged_at: None,
    });
    Ok(())
}

/// Confirms delivery of a message. Owner of the recipient agent only.
#[spacetimedb::reducer]
pub fn acknowledge_agent_message(
    ctx: &ReducerContext,
    call_key: CallKey,
    message_id: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let message = found(ctx.db.inbox_message().id().find(message_id), message_id)?;
    owned_by_caller(
        ctx,
        ctx.db.agent().id().find(message.to_agent),
        message.to_agent,
    )?;
    if message.acknowledged_at.is_none() {
        ctx.db.inbox_message().id().update(InboxMessage {
            acknowledged_at: Some(ctx.timestamp),
            ..message
        });
    }
    Ok(())
}

/// Deletes a message the caller sent, acknowledged or not, giving its quota back.
#[spacetimedb::reducer]
pub fn forget_agent_message(
    ctx: &ReducerContext,
    call_key: CallKey,
    message_id: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let message = owned_by_caller(
        ctx,
        ctx.db.inbox_message().id().find(message_id),
        message_id,
    )?;
    ctx.db.inbox_message().id().delete(message_id);
    let bytes = quotas::signed(message.body.len());
    quotas::release(ctx, message.sender, Quota::AgentMessages, 1, bytes);
    Ok(())
}
